"""Keep `make mutate`'s results in the repository, so that a fresh clone goes on where the last run stopped.

    python -m tests.mutation_cache save      # mutants/ -> tests/mutation-cache/
    python -m tests.mutation_cache restore   # tests/mutation-cache/ -> mutants/ (only into an empty mutants/)
    python -m tests.mutation_cache retrace   # forget which functions the tests changed since call

mutmut keeps its results in mutants/ (git-ignored): per mutated file a `.meta` file (each mutant's exit
code, and a hash of every function's source) and `mutmut-stats.json` (which test calls which function,
and each test's duration); beside them, the verdicts of the mutants judged on PostgreSQL
(tests.mutation_postgresql: postgresql-verdicts.json, each with its function's source hash). A whole run
takes most of a day on a two-core machine, longer than any one session, so without this every fresh clone
started from nothing.

What is kept is exactly mutmut's own cache, and mutmut decides what of it still holds, as it does when
mutants/ survives between two runs:
- a mutant's verdict is dropped when the source of its function changed (the hashes in `.meta`);
- tests added since the cache was saved are traced again (new test names), so their functions' mutants
  are given the new tests; mutmut does not notice a test whose body changed (it keeps what the old body
  called), so `retrace` (run by `make mutate` before mutmut) drops those tests from the stats, and mutmut
  traces them again as new ones. A test's source is its function with its decorators, hashed; the
  hashes of the last trace are kept in mutants/test-sources.json (and the cache). Without that record
  the sources are read at the commit of mutmut's last full trace (the stats' `git_commit`), and a test
  added since is traced again too. A change in a fixture or helper is not seen: MUTATE_FRESH=1 for that;
- `make mutate` re-runs every mutant that is not killed (survivors, timeouts, not run yet), so only
  "killed" verdicts are reused — a test made weaker since could leave a reused kill stale, which is why
  `make mutate MUTATE_FRESH=1` ignores the saved cache and starts from nothing.
The report (docs/mutation-report.md) says when the cache it started from was saved and at which commit.
"""
from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
CACHE = ROOT / "tests" / "mutation-cache"
STATS = "mutmut-stats.json"
ORIGIN = "origin.json"
VERDICTS = "postgresql-verdicts.json"   # written by tests.mutation_postgresql
SOURCES = "test-sources.json"           # each test's source hash when mutmut last traced it (retrace)


def _metas(root: Path) -> list[Path]:
    """mutmut's `.meta` files under `root`, one per mutated source file (not the copy of this cache that
    mutmut makes when it copies tests/ into mutants/)."""
    return sorted(p.relative_to(root) for p in root.rglob("*.meta") if p.relative_to(root).parts[0] != "tests")


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def save() -> str:
    if not (MUTANTS / STATS).exists():
        return "mutation cache: nothing to save (no mutants/mutmut-stats.json)"
    if CACHE.exists():
        shutil.rmtree(CACHE)
    for relative in _metas(MUTANTS):   # small, and a diff of them shows which verdicts changed
        _write_json(CACHE / relative, json.loads((MUTANTS / relative).read_text(encoding="utf-8")))
    # Which test calls which function: megabytes of JSON, kept compressed (mtime 0: the same stats give
    # the same bytes).
    with open(CACHE / (STATS + ".gz"), "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        out.write((MUTANTS / STATS).read_bytes())
    for name in (VERDICTS, SOURCES):   # the run on PostgreSQL (tests.mutation_postgresql); retrace's record
        if (MUTANTS / name).exists():
            shutil.copyfile(MUTANTS / name, CACHE / name)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "content", "handbook", "push", "api", "tests"],
                                cwd=ROOT, capture_output=True, text=True).stdout.strip())
    _write_json(CACHE / ORIGIN, {"saved_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "commit": commit,
                                 "uncommitted_changes": dirty})
    return f"mutation cache: saved {len(_metas(CACHE))} .meta files and {STATS}.gz to {CACHE}"


def restore() -> str:
    if not (CACHE / (STATS + ".gz")).exists():
        return "mutation cache: none saved, starting from nothing"
    if (MUTANTS / STATS).exists() or (MUTANTS.exists() and _metas(MUTANTS)):
        return "mutation cache: mutants/ already has results, the saved cache is not used"
    for relative in _metas(CACHE):
        target = MUTANTS / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CACHE / relative, target)
    with gzip.open(CACHE / (STATS + ".gz"), "rb") as stats:
        (MUTANTS / STATS).write_bytes(stats.read())
    for name in (VERDICTS, SOURCES):
        if (CACHE / name).exists():
            shutil.copyfile(CACHE / name, MUTANTS / name)
    (MUTANTS / "restored-from.txt").write_text(origin() + "\n", encoding="utf-8")
    return f"mutation cache: restored into mutants/ ({origin()})"


def test_sources(commit: str | None = None) -> dict[str, str]:
    """`tests/<file>.py::<test>` (`::<Class>::<test>` for a method) -> a hash of the test function's source
    with its decorators (its parameters included), for every test module of the working tree, or of
    `commit`."""
    sources: dict[str, str] = {}
    for path, text in _test_modules(commit):
        lines = text.splitlines()

        def digest(node) -> str:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return hashlib.sha256("\n".join(lines[first - 1:node.end_lineno]).encode()).hexdigest()[:16]

        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                sources[f"{path}::{node.name}"] = digest(node)
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                for method in node.body:
                    if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef) and method.name.startswith("test"):
                        sources[f"{path}::{node.name}::{method.name}"] = digest(method)
    return sources


def _test_modules(commit: str | None):
    """(path, text) of each test module, in the working tree or at `commit`."""
    if commit is None:
        for module in sorted((ROOT / "tests").glob("test_*.py")):
            yield f"tests/{module.name}", module.read_text(encoding="utf-8")
        return

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    for name in sorted(git("ls-tree", "--name-only", f"{commit}:tests").split()):
        if name.startswith("test_") and name.endswith(".py"):
            yield f"tests/{name}", git("show", f"{commit}:tests/{name}")


def _sources_at(commit: str) -> dict[str, str] | None:
    if not commit:
        return None
    try:
        return test_sources(commit)
    except subprocess.CalledProcessError:   # not a commit of this clone
        return None


def _base(test: str) -> str:
    """A test id without its parameters: `tests/f.py::test_x[sqlite]` -> `tests/f.py::test_x`."""
    return test.split("[", 1)[0]


def retrace() -> str:
    """Drop from mutmut's stats the tests whose source changed since they were traced (so mutmut traces
    them again, as new tests), and record the sources now."""
    if not (MUTANTS / STATS).exists():
        return "mutation cache: no stats yet, mutmut traces every test"
    stats = json.loads((MUTANTS / STATS).read_text(encoding="utf-8"))
    now = test_sources()
    record = MUTANTS / SOURCES
    if record.exists():
        before, since = json.loads(record.read_text(encoding="utf-8")), "the last trace"
    else:
        before, since = _sources_at(stats.get("git_commit") or ""), f"commit {(stats.get('git_commit') or '')[:10]}"
        if before is None:
            return (f"mutation cache: cannot tell which tests changed (no {SOURCES}, no commit to compare with);"
                    " MUTATE_FRESH=1 traces every test again")
    changed = {t for t in stats["duration_by_test"] if before.get(_base(t)) != now.get(_base(t))}
    for test in changed:
        del stats["duration_by_test"][test]
    for tests in stats["tests_by_mangled_function_name"].values():
        tests[:] = [t for t in tests if t not in changed]
    _write_json(MUTANTS / STATS, stats)
    _write_json(record, now)
    if not changed:
        return f"mutation cache: no traced test changed since {since}"
    return f"mutation cache: {len(changed)} traced tests changed since {since}, mutmut traces them again"


def restored_from() -> str | None:
    """What mutants/ was started from, when it was restored from the saved cache (for the report)."""
    marker = MUTANTS / "restored-from.txt"
    return marker.read_text(encoding="utf-8").strip() if marker.exists() else None


def origin() -> str:
    """Where the saved cache came from."""
    try:
        data = json.loads((CACHE / ORIGIN).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no saved cache"
    return f"saved {data['saved_at']} at commit {data['commit'][:10]}" + (
        " with uncommitted changes" if data.get("uncommitted_changes") else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["save", "restore", "retrace"])
    args = parser.parse_args()
    print({"save": save, "restore": restore, "retrace": retrace}[args.action]())
    sys.exit(0)


if __name__ == "__main__":
    main()
