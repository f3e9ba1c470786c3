"""The direction of the imports between the packages: storage is shared by the receiver and the worker, and
neither of those imports the other; `schemas` is pure and imports nothing of ours."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("orderhooks", "platforms", "receiver", "schemas", "storage", "workers")


def imported(package: str) -> dict[str, set[str]]:
    """Every top-level module each file of `package` imports (at module level or inside a function)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", ["receiver", "storage", "platforms", "schemas"])
def test_only_the_worker_imports_workers(package):
    assert {f: n for f, n in imported(package).items() if "workers" in n} == {}


@pytest.mark.parametrize("package", ["workers", "storage"])
def test_nothing_below_the_http_edge_imports_the_receiver(package):
    assert {f: n for f, n in imported(package).items() if "receiver" in n} == {}


def test_storage_knows_no_http():
    assert {f: n for f, n in imported("storage").items() if n & {"starlette", "httpx", "uvicorn"}} == {}


def test_schemas_import_nothing_of_ours():
    assert {f: n & set(OURS) for f, n in imported("schemas").items() if n & set(OURS)} == {}
