"""Write the report of `make mutate` (docs/mutation-report.md) from mutmut's stored results.

    python -m tests.mutation_report [--out docs/mutation-report.md]

Per module: how many mutants were made and what became of them (killed, survived, timeout, no tests,
not yet run); then every surviving mutant with its diff, and whether it is a known equivalent mutant
(tests/mutation_equivalents.txt: `mutant name: why it cannot be told apart from the real code`). A
surviving mutant that is not listed there is a behaviour change no test notices: kill it with a test.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests import mutation_cache, mutation_postgresql

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["content.progress", "content.acknowledgements", "content.access", "handbook.permissions",
           "handbook.auth", "push.schedule", "push.fanout"]
EQUIVALENTS = ROOT / "tests" / "mutation_equivalents.txt"
LINE = re.compile(r"^\s+(?P<name>\S+): (?P<status>.+)$")


def mutmut(*args: str) -> str:
    command = [str(Path(sys.executable).with_name("mutmut")), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def equivalents() -> dict[str, tuple[str | None, str]]:
    """tests/mutation_equivalents.txt: `name: why`, or `name @pin: why` once the why was checked against the
    mutant's diff (`pin`: its fingerprint). mutmut numbers mutants per function, so a name can come to mean
    another mutant when the function changes; a pinned explanation then no longer counts."""
    known = {}
    if EQUIVALENTS.exists():
        for line in EQUIVALENTS.read_text(encoding="utf-8").splitlines():
            if entry := _entry(line):
                name, pinned, why = entry
                known[name] = (pinned, why.strip())
    return known


def _entry(line: str) -> tuple[str, str | None, str] | None:
    """(name, pin or None, why) of one line of tests/mutation_equivalents.txt; None for a comment or blank."""
    head, sep, why = line.partition(": ")
    if not sep or not line.strip() or line.startswith("#"):
        return None
    name, _, pinned = head.strip().partition(" @")
    return name, pinned or None, why


def diff(name: str) -> str:
    return mutmut("show", name).split("\n", 1)[-1].strip()


def pin(mutant_diff: str) -> str:
    """The fingerprint of a mutant: its removed and added lines, whitespace aside."""
    changed = [line.strip() for line in mutant_diff.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return hashlib.sha256("\n".join(changed).encode()).hexdigest()[:10]


def pin_entries(names: list[str]) -> None:
    """Write the current diff's pin into each named entry (after checking its why against that diff)."""
    wanted, lines = set(names), []
    for line in EQUIVALENTS.read_text(encoding="utf-8").splitlines():
        if (entry := _entry(line)) and entry[0] in wanted:
            name, _, why = entry
            line = f"{name} @{pin(diff(name))}: {why}"
            wanted.discard(name)
        lines.append(line)
    if wanted:
        raise SystemExit(f"not in {EQUIVALENTS.name}: {sorted(wanted)}")
    EQUIVALENTS.write_text("\n".join(lines) + "\n", encoding="utf-8")


def module_of(name: str) -> str:
    return next((m for m in MODULES if name.startswith(m + ".")), name.rsplit(".", 1)[0])


def results() -> dict[str, str]:
    """Every mutant mutmut knows of and its status ('killed', 'survived', 'not checked', ...)."""
    statuses: dict[str, str] = {}
    for line in mutmut("results", "--all", "true").splitlines():
        if match := LINE.match(line):
            statuses[match["name"]] = match["status"].strip()
    return statuses


def _source(module: str) -> Path:
    """content.progress → content/progress.py (relative to ROOT, as mutmut names it; mutants/ + `.meta`)."""
    return Path(*module.split(".")).with_suffix(".py")


def current_mutants(modules: list[str]) -> dict[str, str]:
    """Every mutant mutmut makes of the modules' current source, with the hash of its function's source."""
    from mutmut.mutation.file_mutation import mutate_file_contents
    from mutmut.utils.format_utils import get_mutant_name, mangled_name_from_mutant_name
    hashes = {}
    for module in modules:
        path = _source(module)
        mutated = mutate_file_contents(str(path), (ROOT / path).read_text(encoding="utf-8"))
        for name in mutated.mutant_names:
            key = get_mutant_name(path, name)
            hashes[key] = mutated.hash_by_function_name[mangled_name_from_mutant_name(key).rpartition(".")[2]]
    return hashes


def current_results(modules: list[str] = MODULES, hashes: dict[str, str] | None = None) -> dict[str, str]:
    """`sqlite_results()`, with the verdicts of the run on PostgreSQL (tests.mutation_postgresql) for the
    mutants SQLite could not judge (or did not run: `not_run_on_sqlite`): killed there is killed, surviving
    there is a survivor."""
    hashes = hashes or current_mutants(modules)
    statuses = sqlite_results(modules, hashes)
    for name, verdict in mutation_postgresql.current(mutation_postgresql.load(), hashes).items():
        if statuses.get(name) in ("no tests", "survived", "not checked"):
            statuses[name] = verdict
    return statuses


def sqlite_results(modules: list[str], hashes: dict[str, str] | None = None) -> dict[str, str]:
    """`results()` for the modules' current source: a verdict recorded for a function whose source changed
    since (mutmut drops it when it next generates that file) is 'not checked', and so is a mutant of new
    code; mutants of code that is gone are left out."""
    recorded = results()
    stored_hashes = {}
    for module in modules:
        meta = ROOT / "mutants" / _source(module).with_suffix(".py.meta")
        if meta.exists():
            stored = json.loads(meta.read_text(encoding="utf-8")).get("hash_by_function_name", {})
            stored_hashes.update({f"{module}.{function}": h for function, h in stored.items()})
    statuses = {}
    for name, digest in (hashes or current_mutants(modules)).items():
        function = name.partition("__mutmut_")[0]
        same = stored_hashes.get(function) == digest
        statuses[name] = recorded.get(name, "not checked") if same else "not checked"
    return statuses


def pending(module: str) -> list[str]:
    """What `mutmut run` should be given for `module`: its mutants not killed yet (not checked, survived:
    tests may have been added since), or the module's pattern when nothing was generated yet. A timeout is
    a detected change (the tests hung: an endless loop) and is not run again until its function changes
    (mutmut then drops the verdict); each would cost mutmut's whole per-mutant limit for nothing.
    (mutmut re-runs every mutant it is given by name or pattern, and only unchecked ones when given none.)"""
    try:
        statuses = current_results([module])
    except (subprocess.CalledProcessError, FileNotFoundError):
        statuses = {}
    if not statuses:
        return [f"{module}.*"]
    todo = undetected(statuses)
    if not os.environ.get("MUTATE_RECHECK"):
        entries = equivalents()
        todo -= not_run_on_sqlite(statuses, entries, lambda n: explained_for_its_diff(n, entries))
    return sorted(todo)


DETECTED = ("killed", "caught by type check", "timeout")


def undetected(statuses: dict[str, str]) -> set[str]:
    """The mutants no run has detected yet: not checked, no tests, survived (a timeout is detected)."""
    return {n for n, s in statuses.items() if s not in DETECTED}


def not_run_on_sqlite(statuses: dict[str, str], entries: dict[str, tuple[str | None, str]],
                      pinned: Callable[[str], bool]) -> set[str]:
    """The mutants `make mutate` leaves out of mutmut's run on SQLite (MUTATE_RECHECK=1 leaves out none):
    - a survivor explained for exactly its current diff (`pinned`): equivalent, PostgreSQL-only or left
      open, said so; no test on SQLite can kill it, and running its tests again costs up to minutes each;
    - a mutant not run yet whose pinned explanation says "PostgreSQL only" (code only PostgreSQL runs, e.g.
      a PostgreSQL branch): SQLite would run every test tied to its function for nothing; it is judged by
      the run on PostgreSQL (tests.mutation_postgresql) instead."""
    return {n for n, status in statuses.items()
            if n in entries and (status == "survived" or (status == "not checked"
                                                          and entries[n][1].startswith(mutation_postgresql.POSTGRESQL_ONLY)))
            and pinned(n)}


def explained_for_its_diff(name: str, entries: dict[str, tuple[str | None, str]]) -> bool:
    """The mutant's explanation is pinned to the diff it has now (so running it again only costs time)."""
    return name in entries and entries[name][0] is not None and entries[name][0] == current_pin(name)


def current_pin(name: str) -> str | None:
    """The pin of the mutant's diff, or None before mutmut generated the mutants (a fresh clone whose
    mutants/ holds only the restored results): its survivors are then run once more, which is safe."""
    try:
        return pin(diff(name))
    except subprocess.CalledProcessError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "mutation-report.md"))
    parser.add_argument("--pending", metavar="MODULE", help="print the mutants of MODULE still to run, and stop")
    parser.add_argument("--pin", nargs="+", metavar="MUTANT",
                        help="pin these entries of tests/mutation_equivalents.txt to their current diffs, and stop")
    args = parser.parse_args()
    if args.pending:
        print(" ".join(pending(args.pending)))
        return
    if args.pin:
        pin_entries(args.pin)
        return
    out = Path(args.out)
    hashes = current_mutants(MODULES)
    statuses = current_results(MODULES, hashes)
    on_pg = Counter(mutation_postgresql.current(mutation_postgresql.load(), hashes).values())
    counts: dict[str, Counter] = defaultdict(Counter)
    for name, status in statuses.items():
        counts[module_of(name)][status] += 1
    survivors = sorted(n for n, s in statuses.items() if s == "survived")
    diffs = {n: diff(n) for n in survivors}
    entries = equivalents()
    # An explanation pinned to another diff explains nothing now (the function changed, the name moved).
    moved = {n for n in survivors if n in entries and entries[n][0] not in (None, pin(diffs[n]))}
    # An explanation saying PostgreSQL kills it explains nothing while it survives there (or was not run there).
    refuted = {n for n in survivors if n in entries and n not in moved
               and mutation_postgresql.claims_a_kill(entries[n][1])}
    known = {n: why for n, (_, why) in entries.items() if n not in moved and n not in refuted}
    unpinned = {n for n in survivors if n in known and entries[n][0] is None}
    real = [n for n in survivors if n not in known]
    lines = ["# Mutation testing report (`make mutate`)", "",
             f"Written by `python -m tests.mutation_report` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from mutmut's "
             "results in mutants/ (on SQLite) and the verdicts on PostgreSQL of the mutants SQLite cannot judge "
             f"(tests.mutation_postgresql: {on_pg['killed']} killed there, {on_pg['survived']} surviving there, "
             f"{sum(on_pg.values()) - on_pg['killed'] - on_pg['survived']} neither). "
             "See docs/mutation.md for what was run.", "",
             "Started from: " + (f"the results saved in tests/mutation-cache/ ({restored}); mutmut kept the "
                                 "verdicts of the functions whose source had not changed, and every mutant not "
                                 "killed was run again." if (restored := mutation_cache.restored_from())
                                 else "nothing saved (this mutants/ was built by its own runs)."), "",
             "| module | mutants | killed | survived (of them known, with why) | timeout | no tests | not run yet | other |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for module in MODULES:
        c = counts.get(module, Counter())
        equivalent = sum(1 for n in survivors if module_of(n) == module and n in known)
        other = sum(v for k, v in c.items() if k not in ("killed", "survived", "timeout", "no tests", "not checked"))
        lines.append(f"| {module} | {sum(c.values())} | {c['killed']} | {c['survived']} ({equivalent}) | "
                     f"{c['timeout']} | {c['no tests']} | {c['not checked']} | {other} |")
    not_run = sum(1 for s in statuses.values() if s == "not checked")
    lines += ["", f"Surviving mutants not explained in tests/mutation_equivalents.txt: **{len(real)}**"
              f" ({len(moved)} of them explained for another diff). Explained but not yet pinned to their "
              f"diffs: {len(unpinned)}.",
              "", f"Not run yet: **{not_run}** of {len(statuses)} mutants (each module's run stops at "
              "MUTATE_SECONDS; `make mutate` again goes on). Until that is 0 this report is partial.", ""]
    for title, names in (("Surviving mutants (behaviour changes no test notices)", real),
                         ("Known survivors, with why (equivalent; PostgreSQL-only; or left open on purpose, said so)",
                          [n for n in survivors if n in known])):
        lines += [f"## {title}", ""]
        if not names:
            lines += ["None.", ""]
        for name in names:
            lines.append(f"### `{name}`")
            if name in known:
                lines += ["", f"Why: {known[name]}" + (" (not yet pinned to this diff: check that it is the "
                                                        "mutant the why describes)" if name in unpinned else "")]
            elif name in moved:
                lines += ["", f"Explained for another diff (the function changed since): {entries[name][1]}"]
            elif name in refuted:
                lines += ["", "Explained as killed on PostgreSQL (or outside mutmut's selection), but it was not "
                              f"killed there: {entries[name][1]}"]
            lines += ["", "```diff", diffs[name], "```", ""]
    # Not run yet and no tests are counted in the table; anything else (timeouts, crashes) is named.
    others = sorted(n for n, s in statuses.items() if s not in ("killed", "survived", "not checked", "no tests"))
    if others:
        lines += ["## Neither killed nor surviving", ""]
        lines += [f"- `{n}`: {statuses[n]}" for n in others]
        lines.append("")
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"{out}: {len(statuses)} mutants, {len(survivors)} survived, {len(real)} not known to be equivalent")


if __name__ == "__main__":
    main()
