"""Domain packages never import the HTTP layer (api/); only the app factory wires it in."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {ROOT / "handbook" / "__init__.py"}  # the composition root


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_packages_do_not_import_api():
    offenders = []
    for package in ("handbook", "content", "push"):
        for path in (ROOT / package).rglob("*.py"):
            if path not in ALLOWED and "api" in _imports(path):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
