"""Domain packages never import the HTTP faces (api/, console/); only the app factory wires them in. The
two faces do not import each other: each calls the domain directly. And the suite keeps what it writes
out of the checkout."""
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
            if path not in ALLOWED and _imports(path) & {"api", "console"}:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_test_artefacts_stay_out_of_the_checkout(app):
    """The suite writes its artefacts to temporary folders: the apps' instance folder (the embedded push
    worker's push-worker.lock) and Hypothesis' home (its example database and constants cache), never
    instance/ or .hypothesis/ in the checkout."""
    from hypothesis.configuration import storage_directory

    assert not Path(app.instance_path).resolve().is_relative_to(ROOT), app.instance_path
    home = storage_directory("constants", intent_to_write=False).home_directory
    assert not Path(home).resolve().is_relative_to(ROOT), home


def test_the_two_faces_do_not_import_each_other():
    offenders = [str(path.relative_to(ROOT)) for face, other in (("api", "console"), ("console", "api"))
                 for path in (ROOT / face).rglob("*.py") if other in _imports(path)]
    assert offenders == []
