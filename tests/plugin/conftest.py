"""test_pytest_plugin.py runs its user projects in this process (`pytester.runpytest`), and pytester drops every
module first imported during such a run once it ends. A library with a compiled half does not survive being
imported twice in one process: the compiled half keeps the first copy's classes, and the next run's sandbox
answers 500 (PyYAML's libyaml loader in the specs; cryptography under PyJWT when signing a token). The sandbox
imports those lazily, so they are imported here, before any such run, whichever test of this folder runs first."""

import jwt.algorithms  # noqa: F401
import yaml  # noqa: F401
