"""Keep `make mutate`'s results in the repository, so that a fresh clone goes on where the last run stopped.

    python -m tests.mutation_cache save      # mutants/ -> tests/mutation-cache/
    python -m tests.mutation_cache restore   # tests/mutation-cache/ -> mutants/ (only into an empty mutants/)

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
  are given the new tests;
- `make mutate` re-runs every mutant that is not killed (survivors, timeouts, not run yet), so only
  "killed" verdicts are reused — a test made weaker since could leave a reused kill stale, which is why
  `make mutate MUTATE_FRESH=1` ignores the saved cache and starts from nothing.
The report (docs/mutation-report.md) says when the cache it started from was saved and at which commit.
"""
from __future__ import annotations

import argparse
import gzip
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
    if (MUTANTS / VERDICTS).exists():   # the run on PostgreSQL (tests.mutation_postgresql)
        shutil.copyfile(MUTANTS / VERDICTS, CACHE / VERDICTS)
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
    if (CACHE / VERDICTS).exists():
        shutil.copyfile(CACHE / VERDICTS, MUTANTS / VERDICTS)
    (MUTANTS / "restored-from.txt").write_text(origin() + "\n", encoding="utf-8")
    return f"mutation cache: restored into mutants/ ({origin()})"


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
    parser.add_argument("action", choices=["save", "restore"])
    args = parser.parse_args()
    print(save() if args.action == "save" else restore())
    sys.exit(0)


if __name__ == "__main__":
    main()
