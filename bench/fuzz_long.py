"""The long Schemathesis run (by hand): many more examples than CI, every target, every failure listed.

    python bench/fuzz_long.py [--examples 500] [--negative 200] [--only epayment]

Same targets, hook and spec-bug exceptions as tests/evidence/test_fuzz_schemathesis.py (tests/support/fuzz_support.py),
but it keeps going after a failure and prints a table of statuses per operation. Exit status 1 if
anything failed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

import fuzz_support  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="positive cases per operation")
    parser.add_argument("--negative", type=int, default=200, help="negative cases per operation")
    parser.add_argument("--only", default="", help="run the targets whose id contains this")
    parser.add_argument("--seed", type=int, default=None,
                        help="explore with this random seed (default: a new one each run, printed); CI is derandomized")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(2**32)
    print(f"seed {args.seed} (rerun with --seed {args.seed})")
    sandbox = fuzz_support.ThreadedSandbox().start()
    failures = 0
    try:
        creds = fuzz_support.Credentials(sandbox).prepare()
        schemas: dict = {}
        print(f"{'operation':72} {'mode':8} {'seconds':>7}  statuses")
        for target in fuzz_support.TARGETS:
            if args.only not in target.id:
                continue
            schema = schemas.setdefault(target.spec, fuzz_support.load(target.spec))
            for mode, count in ((GenerationMode.POSITIVE, args.examples), (GenerationMode.NEGATIVE, args.negative)):
                started = time.perf_counter()
                try:
                    statuses = fuzz_support.run_target(creds, schema, target, count, mode=mode, seed=args.seed)
                    outcome = " ".join(f"{k}x{v}" for k, v in sorted(statuses.items()))
                except BaseException as exc:  # noqa: BLE001 - report and go on with the next target
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    failures += 1
                    outcome = "FAILED\n    " + str(exc).strip().replace("\n", "\n    ")[:3000]
                print(f"{target.id + ' (' + target.env + ')':72} {mode.value:8} "
                      f"{time.perf_counter() - started:7.1f}  {outcome}", flush=True)
    finally:
        sandbox.stop()
    print(f"{failures} failing operation/mode pairs")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
