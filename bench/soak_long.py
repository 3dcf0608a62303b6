"""The long soak (by hand): tests/evidence/test_soak.py with a longer duration, its summary line printed.

    python bench/soak_long.py [seconds]      # default 1800

The same mixed load as the CI soak (bench/loadgen.py: ePayment, Recurring with the virtual clock moving,
Checkout, Login CIBA, a webhook receiver, Report reads, requests that must fail) and the same checks:
zero unexpected answers; payments against their event logs and the ledgers; agreements against their
charges, every charge's state and amounts; checkout sessions against their payments; every webhook and
callback received, signed; CIBA tokens once per approved login; RSS flat once nothing new is made. Only
the duration differs. The summary line ("soak: ... requests ... RSS ... drift ...") is printed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    seconds = sys.argv[1] if len(sys.argv) > 1 else "1800"
    env = dict(os.environ, VIPPS_SANDBOX_SOAK_SECONDS=seconds)
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                              str(ROOT / "tests" / "evidence" / "test_soak.py")], cwd=ROOT, env=env))
