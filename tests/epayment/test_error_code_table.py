"""The documented ePayment error-code table (sandbox.apis.epayment.error_codes) is whole and agrees with rules.py.

Integrity only: the wiring (each emulated code reached by a request) is tested elsewhere.
"""

import ast
from pathlib import Path

from sandbox.apis.epayment import error_codes, rules
from sandbox.apis.epayment.error_codes import BY_CODE, ERROR_CODES, SANDBOX_TITLE_DIFFERENCES

PACKAGE = Path(rules.__file__).parent


def test_codes_are_unique_numeric_strings():
    codes = [row.code for row in ERROR_CODES]
    assert len(codes) == len(set(codes)) == len(BY_CODE)
    assert all(code.isdigit() for code in codes)
    assert codes == sorted(codes, key=int), "keep the table in code order"


def test_every_row_is_filled_in():
    for row in ERROR_CODES:
        assert 400 <= row.status <= 599, row
        assert row.title and row.condition and row.source, row
        assert row.emulated in (True, False, None), row
        if row.emulated:
            assert not row.not_emulated_reason, f"{row.code}: a reason only for rows that are not emulated"
        else:
            assert row.not_emulated_reason, f"{row.code}: say why it is not emulated"


def test_the_documented_groups_are_all_there():
    expected = {"3010", *(str(c) for c in range(4010, 4170, 10) if c != 4030),
                *(str(c) for c in range(5010, 5110, 10)),
                *(str(c) for c in range(6010, 6240, 10)), "6250", "6260", "6280", "7010",
                *(str(c) for c in range(10010, 10080, 10))}
    assert expected == set(BY_CODE)


def test_every_code_the_sandbox_knows_is_in_the_table_with_its_title_or_a_stated_difference():
    for code, title in rules.CODE_TITLES.items():
        assert code in BY_CODE, f"{code} is in rules.CODE_TITLES but not documented in error_codes.py"
        if title != BY_CODE[code].title:
            assert code in SANDBOX_TITLE_DIFFERENCES, f"{code}: {title!r} vs documented {BY_CODE[code].title!r}"
    assert set(SANDBOX_TITLE_DIFFERENCES) <= set(rules.CODE_TITLES)
    for code in SANDBOX_TITLE_DIFFERENCES:
        assert rules.CODE_TITLES[code] != BY_CODE[code].title, f"{code}: titles agree now; drop the note"


def test_statuses_agree_with_rules_for_the_emulated_codes():
    for code in rules.CODE_TITLES:
        assert rules.CODE_STATUS.get(code, 400) == BY_CODE[code].status, code


def _codes_raised_by_the_backend() -> set[str]:
    """Every literal code passed to problem(...) in the package, plus the magic-amount and conflict tables."""
    raised = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "problem" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    raised.add(first.value)
    raised |= {code for code, _ in rules.MAGIC_AMOUNTS.values()}
    raised |= {code for code, _ in rules.MAGIC_REFUND_AMOUNTS.values()}
    raised |= set(rules.IDEMPOTENCY_CONFLICT_CODE.values())
    return raised


def test_emulated_means_the_backend_raises_it():
    raised = _codes_raised_by_the_backend()
    marked = {row.code for row in ERROR_CODES if row.emulated}
    assert marked == raised, f"marked but not raised: {marked - raised}; raised but not marked: {raised - marked}"


def test_the_module_is_pure_data():
    tree = ast.parse(Path(error_codes.__file__).read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {alias.name for n in imports if isinstance(n, ast.Import) for alias in n.names}
    names |= {n.module for n in imports if isinstance(n, ast.ImportFrom)}
    assert names <= {"__future__", "dataclasses", "typing"}, names
