"""The long Schemathesis run (by hand): many more examples than CI, every target, every failure listed.

    python bench/fuzz_long.py [--examples 500] [--negative 200] [--only epayment]

Same targets, hooks and spec-bug exceptions as tests/evidence/test_fuzz_schemathesis.py, tests/login/test_login_fuzz.py
and tests/userinfo/test_userinfo_fuzz.py (every target of tests/support/fuzz_support.py's FUZZED), but it keeps going
after a failure and prints a table of statuses per operation and environment. Exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
for folder in ("support", "login", "userinfo"):
    sys.path.insert(0, str(TESTS / folder))

import fuzz_support  # noqa: E402
import test_login_fuzz  # noqa: E402  (Login's hook: tests/login/test_login_fuzz.py)
import test_userinfo_fuzz  # noqa: E402  (Userinfo's: tests/userinfo/test_userinfo_fuzz.py)
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
        userinfo = test_userinfo_fuzz.UserinfoCredentials(sandbox).prepare()
        login = test_login_fuzz.LoginHook(sandbox)
        schemas: dict = {}

        def schema(spec: str):
            return schemas.setdefault(spec, fuzz_support.load(spec))

        # every target of the accounting (fuzz_support.FUZZED), each with its own hook
        runs = [(t, lambda t, n, mode: fuzz_support.run_target(creds, schema(t.spec), t, n, mode=mode, seed=args.seed))
                for t in fuzz_support.TARGETS]
        meant = test_userinfo_fuzz.load_meant()
        runs += [(t, lambda t, n, mode: fuzz_support.run_target(userinfo, meant, t, n, mode=mode, seed=args.seed))
                 for t in fuzz_support.USERINFO_TARGETS]
        login_schemas = {spec: schema(spec) for spec in {t.spec for t in fuzz_support.LOGIN_TARGETS}}
        runs += [(t, lambda t, n, mode: test_login_fuzz.run(login, login_schemas, t, n, mode, seed=args.seed))
                 for t in fuzz_support.LOGIN_TARGETS]
        print(f"{'operation':72} {'mode':8} {'seconds':>7}  statuses")
        for target, runner in runs:
            if args.only not in target.id:
                continue
            for mode, count in ((GenerationMode.POSITIVE, args.examples), (GenerationMode.NEGATIVE, args.negative)):
                if mode is GenerationMode.NEGATIVE and target.path.endswith("/oauth2/auth"):
                    continue  # it declares no parameter: no negative case exists
                started = time.perf_counter()
                try:
                    statuses = runner(target, count, mode)
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
