"""Judge on PostgreSQL the mutants that mutmut's run on SQLite cannot judge (`make mutate`, per module).

    python -m tests.mutation_postgresql MODULE [--seconds N] [--only PART...]

mutmut runs the tests on SQLite. Code that runs only on PostgreSQL (the pipelined writes of an
acknowledgement, row locks, SKIP LOCKED, ...) leaves it two kinds of mutants it cannot judge:
- "no tests": SQLite never calls the function, so no test is tied to it;
- survivors that only PostgreSQL's tests can kill (tests/mutation_equivalents.txt says "PostgreSQL only"),
  or only a test file outside mutmut's selection ("Outside mutmut's selection"); every survivor not yet
  explained is tried here too, before anyone writes a test or an explanation for it.
Each of them is run here the way mutmut runs a mutant — pytest -x in mutants/, with MUTANT_UNDER_TEST set
to its name — on PostgreSQL only (TEST_BACKENDS=postgresql), over the tests that mutmut tied to its
function or, for a function only PostgreSQL calls, to the functions of the module that call it; plus the
module's own test files (conftest.MUTATION_FIRST), where the PostgreSQL-only tests are (SQLite skips them,
so mutmut never tied them to anything).

The verdicts go to mutants/postgresql-verdicts.json with the hash of the function's source (a verdict for
a function that changed since is judged again) and are saved with mutmut's results (tests.mutation_cache);
the report (tests.mutation_report) counts a mutant killed here as killed and one surviving here as a
survivor to kill or explain. The tests run in TEST_DATABASE_URL (`make mutate`: MUTATE_DATABASE_URL, by
default its own database handbook_mutate, created when missing, not the one `make test` empties); without
a reachable PostgreSQL this says so and does nothing.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time

from tests.mutation_cache import MUTANTS, ROOT, VERDICTS

PER_MUTANT_SECONDS = 900
# Its own database (created when missing), so that a `make test` running meanwhile is not disturbed.
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/handbook_mutate"


def load() -> dict[str, dict]:
    path = MUTANTS / VERDICTS
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _record(name: str, verdict: str, digest: str) -> None:
    """Add one verdict to the file as it is now (another module's run may have added some meanwhile)."""
    verdicts = {**load(), name: {"verdict": verdict, "hash": digest}}
    scratch = MUTANTS / (VERDICTS + f".{os.getpid()}")
    scratch.write_text(json.dumps(verdicts, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    scratch.replace(MUTANTS / VERDICTS)


def current(verdicts: dict[str, dict], hashes: dict[str, str]) -> dict[str, str]:
    """The verdicts that still hold: those recorded for the current source of the mutant's function."""
    return {name: v["verdict"] for name, v in verdicts.items() if hashes.get(name) == v["hash"]}


# Survivors explained as killed only by tests mutmut's run on SQLite does not have: PostgreSQL's, or those of
# a test file outside setup.cfg's selection (conftest.MUTATION_FIRST lists it; changing the selection
# would make mutmut drop every verdict).
POSTGRESQL_ONLY = "PostgreSQL only"   # how an explanation says only PostgreSQL can judge the mutant
JUDGED_HERE = (POSTGRESQL_ONLY, "Outside mutmut's selection")


def claims_a_kill(why: str) -> bool:
    """The explanation says the mutant is killed here (on PostgreSQL, or by a file outside the selection),
    not that it is equivalent: while it survives here it is not explained (the report counts it among the
    unexplained survivors, and this run judges it again)."""
    return why.startswith(JUDGED_HERE) and not re.search(r"(?<!not )equivalent", why)


def wanted(statuses: dict[str, str], entries: dict[str, tuple[str | None, str]], judged: dict[str, str]) -> list[str]:
    """The mutants to run here: SQLite's "no tests", its survivors that no explanation calls equivalent
    (an unexplained one may be killed by PostgreSQL's tests or a file outside the selection; and those
    explained as such), and the mutants not run on SQLite because they are explained as PostgreSQL-only
    code (mutation_report.not_run_on_sqlite), less those already killed here (a survivor here is run again:
    tests may have been added since)."""
    todo = [name for name, status in statuses.items()
            if status == "no tests" or (status == "survived" and (name not in entries
                                                                  or entries[name][1].startswith(JUDGED_HERE)))
            or (status == "not checked" and name in entries and entries[name][1].startswith(POSTGRESQL_ONLY))]
    return sorted(n for n in todo if judged.get(n) != "killed")


def callers(source: str) -> dict[str, set[str]]:
    """For each top-level function (and method, as `Class.method`) of a module: the others that name it."""
    tree = ast.parse(source)
    bodies: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bodies[node.name] = node
        elif isinstance(node, ast.ClassDef):
            bodies.update({f"{node.name}.{n.name}": n for n in node.body
                           if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))})
    named = {f: {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(body)
                 if isinstance(n, (ast.Name, ast.Attribute))} for f, body in bodies.items()}
    return {f: {g for g, names in named.items() if g != f and f.rpartition(".")[2] in names} for f in bodies}


def _mangled(module: str, function: str) -> str:
    """mutmut's key of a function in its stats: `content.acknowledgements.x__pipelined`, `…xǁ_Stateǁ__init__`."""
    cls, _, name = function.rpartition(".")
    return f"{module}.x{'ǁ' + cls + 'ǁ' if cls else '_'}{name}"


def tests_for(module: str, function: str, source: str, stats: dict) -> list[str]:
    """The tests mutmut tied to the function, or else to the nearest functions of the module that call it
    (breadth first), as PostgreSQL's node ids."""
    by_function = stats.get("tests_by_mangled_function_name", {})
    graph = callers(source)
    seen, frontier, tests = {function}, [function], set()
    while frontier and not tests:
        tests = {t for f in frontier for t in by_function.get(_mangled(module, f), ())}
        frontier = [g for f in frontier for g in sorted(graph.get(f, ())) if g not in seen]
        seen.update(frontier)
    return sorted(re.sub(r"\[sqlite(?=[\]-])", "[postgresql", t) for t in tests)


def own_test_files(module: str, first: dict[str, tuple[str, ...]]) -> list[str]:
    """The module's own test files (conftest.MUTATION_FIRST, keyed by a mutant name's prefix)."""
    return list(next((files for prefix, files in first.items() if f"{module}.".startswith(prefix)), ()))


def _function_of(name: str, module: str) -> str:
    """`content.acknowledgements.x__pipelined__mutmut_3` → `_pipelined`; `…xǁ_Stateǁ__init____mutmut_1` →
    `_State.__init__`."""
    mangled = name[len(module) + 1:].rpartition("__mutmut_")[0]
    if mangled.startswith("xǁ"):
        cls, _, method = mangled[2:].partition("ǁ")
        return f"{cls}.{method}"
    return mangled[2:]


def run(name: str, tests: list[str], database_url: str, seconds: float) -> str:
    env = {**os.environ, "MUTANT_UNDER_TEST": name, "TEST_BACKENDS": "postgresql",
           "TEST_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
    try:
        done = subprocess.run(command, cwd=MUTANTS, env=env, capture_output=True, text=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        return "timeout"
    # pytest: 0 all passed, 1 some failed, 5 nothing collected; anything else is a broken run, not a verdict.
    verdict = {0: "survived", 1: "killed", 5: "no tests"}.get(done.returncode)
    if verdict is None:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        print(f"  {name}: pytest exit {done.returncode}\n{tail}", file=sys.stderr)
        return f"error (pytest exit {done.returncode})"
    return verdict


def _create_database(url: str) -> bool:
    """Create the database of `url` through the server's maintenance database; False if that fails."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    target = make_url(url)
    maintenance = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        with psycopg.connect(maintenance, autocommit=True, connect_timeout=3) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.database)))
        return True
    except psycopg.Error:
        return False


def main() -> None:
    from tests import mutation_report
    from tests.conftest import MUTATION_FIRST, _postgres_reachable

    parser = argparse.ArgumentParser()
    parser.add_argument("module", choices=mutation_report.MODULES)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("MUTATE_SECONDS", 1200)))
    parser.add_argument("--only", nargs="+", metavar="PART", help="only mutants whose name contains one of these")
    args = parser.parse_args()
    url = os.environ.get("TEST_DATABASE_URL", DATABASE_URL)
    if not (_postgres_reachable(url) or (_create_database(url) and _postgres_reachable(url))):
        print(f"mutation on PostgreSQL: {args.module}: PostgreSQL not reachable at {url}, nothing judged")
        return
    module, deadline = args.module, time.monotonic() + args.seconds
    if not (MUTANTS / mutation_report._source(module)).exists():
        print(f"mutation on PostgreSQL: {module}: mutmut has not generated its mutants in this mutants/ yet "
              "(nothing to run on SQLite): nothing judged")
        return
    hashes = mutation_report.current_mutants([module])
    statuses = mutation_report.sqlite_results([module], hashes)
    entries, judged = mutation_report.equivalents(), current(load(), hashes)
    todo = [n for n in wanted(statuses, entries, judged) if not args.only or any(p in n for p in args.only)]
    # As on SQLite: a survivor explained for exactly its current diff is not run again (MUTATE_RECHECK=1: it is),
    # unless the explanation says it is killed here.
    if not os.environ.get("MUTATE_RECHECK"):
        todo = [n for n in todo if not (judged.get(n) == "survived" and not claims_a_kill(entries[n][1])
                                        and mutation_report.explained_for_its_diff(n, entries))]
    source = (ROOT / mutation_report._source(module)).read_text(encoding="utf-8")
    stats = json.loads((MUTANTS / "mutmut-stats.json").read_text(encoding="utf-8"))
    own = own_test_files(module, MUTATION_FIRST)
    print(f"mutation on PostgreSQL: {module}: {len(todo)} mutants to judge")
    for name in todo:
        left = deadline - time.monotonic()
        if left < 30:
            print(f"  stopped at the time limit: {len(todo) - todo.index(name)} left, run again to go on")
            break
        tests = tests_for(module, _function_of(name, module), source, stats)
        selected = own + [t for t in tests if not t.startswith(tuple(f + "::" for f in own))]
        started = time.monotonic()
        verdict = run(name, selected, url, min(PER_MUTANT_SECONDS, left))
        _record(name, verdict, hashes[name])
        print(f"  {name}: {verdict} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
