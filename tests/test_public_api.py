"""The public API as users write it: every name the docs import from the package top, and a
library that loads without pytest (the command line and plain callers do not pay for it)."""

from __future__ import annotations

import builtins
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_seldon_load

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Names written in backticks as calls or classes in the docs, e.g. `assert_no_regression(result)`.
_MENTIONED = re.compile(
    r"`((?:assert_|find_)[a-z0-9_]+|[A-Z][A-Za-z]+(?:Regression|Exceeded|"
    r"Measurement|Result|Endpoint|Settings|Interrupted|Error|File|Request))\b"
)
_IMPORTED = re.compile(r"from pytest_seldon_load import ([^\n]+)")


def documented_names() -> set[str]:
    names: set[str] = set()
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for line in _IMPORTED.findall(text):
            names.update(n.strip(" ()") for n in line.split(",") if n.strip(" ()"))
        names.update(_MENTIONED.findall(text))
        # An exception shown in a failure printout ("PerformanceRegression: ...") is API too.
        names.update(
            re.findall(r"^([A-Z][A-Za-z]+(?:Regression|Exceeded|Measurement)):", text, re.M)
        )
    return {name for name in names if not hasattr(builtins, name)}


def test_the_docs_name_something() -> None:
    assert {"assert_p99_below", "assert_no_regression", "PerformanceRegression"} <= (
        documented_names()
    )


@pytest.mark.parametrize("name", sorted(documented_names()))
def test_every_documented_name_imports_from_the_package_top(name: str) -> None:
    assert name in pytest_seldon_load.__all__
    assert getattr(pytest_seldon_load, name) is not None


@pytest.mark.parametrize("name", pytest_seldon_load.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from pytest_seldon_load import {name}", namespace)
    assert namespace[name] is getattr(pytest_seldon_load, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = pytest_seldon_load.no_such_name  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "modules",
    [
        "pytest_seldon_load",
        "pytest_seldon_load.engine, pytest_seldon_load.result, pytest_seldon_load.replay",
        "pytest_seldon_load.regression, pytest_seldon_load.baseline, pytest_seldon_load.generate",
        "pytest_seldon_load.cli",
        "pytest_seldon_load.iago.engine, pytest_seldon_load.cluster.seldon_cluster",
        "pytest_seldon_load.report.html, pytest_seldon_load.report.json_report",
    ],
)
def test_the_library_imports_without_pytest(modules: str) -> None:
    code = f"import sys; import {modules}; print('pytest' in sys.modules, '_pytest' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.split() == ["False", "False"]
