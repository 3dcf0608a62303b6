"""The long soak (by hand): tests/evidence/test_soak.py with a longer duration, its summary line printed.

    python bench/soak_long.py [seconds]      # default 1800

Same checks as the CI soak (zero unexpected answers, books exact three ways and against the ledger,
RSS flat once no new payments are made); only the duration differs.
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
                              str(ROOT / "tests" / "test_soak.py")], cwd=ROOT, env=env))
