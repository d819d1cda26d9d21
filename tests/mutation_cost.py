"""What one mutant costs under `make mutate`, from mutmut's own stats (mutants/mutmut-stats.json).

    python -m tests.mutation_cost [MODULE ...] [--files] [--top N]

mutmut runs, for each mutant of a function, the tests that called that function while it collected its
stats (`tests_by_mangled_function_name`), with `-x`: a killed mutant stops at its first failing test, a
surviving one runs all of them. So the worst case of a function's mutant is the sum of its tests' clean
durations (`duration_by_test`, call phase only: fixtures come on top). Printed per function: mutants,
tests, worst-case seconds; with --files, which test files those seconds come from.
"""
from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATS = ROOT / "mutants" / "mutmut-stats.json"
MUTANT = re.compile(r"^(?P<module>.+)\.x(?P<function>_.+?)__mutmut_\d+$")


def mutant_names() -> list[str]:
    """Every mutant mutmut generated (names from the .meta files next to the mutated copies)."""
    names = []
    for meta in (ROOT / "mutants").rglob("*.py.meta"):
        names += json.loads(meta.read_text()).get("exit_code_by_key", {})
    return names


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("modules", nargs="*")
    parser.add_argument("--files", action="store_true", help="split each function's seconds by test file")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    stats = json.loads(STATS.read_text())
    tests_by_function = stats["tests_by_mangled_function_name"]
    duration = stats["duration_by_test"]
    per_function: Counter = Counter()
    for name in mutant_names():
        match = MUTANT.match(name)
        if match and (not args.modules or match["module"] in args.modules):
            per_function[f"{match['module']}.x{match['function']}"] += 1
    total = 0.0
    rows = []
    for function, mutants in per_function.items():
        module, _, bare = function.rpartition(".")
        tests = tests_by_function.get(f"{module}.{bare}", [])
        seconds = sum(duration.get(t, 0.0) for t in tests)
        total += mutants * seconds
        rows.append((mutants * seconds, function, mutants, len(tests), seconds, tests))
    rows.sort(reverse=True)
    print(f"{len(per_function)} functions, {sum(per_function.values())} mutants; if every mutant survived: "
          f"{total / 3600:.1f} h of test calls (fixtures and start-up not counted)")
    print(f"{'mutants x s':>11} {'mutants':>7} {'tests':>5} {'s/mutant':>8}  function")
    for weight, function, mutants, ntests, seconds, tests in rows[:args.top]:
        print(f"{weight:11.0f} {mutants:7d} {ntests:5d} {seconds:8.1f}  {function}")
        if args.files:
            by_file: dict[str, float] = defaultdict(float)
            for t in tests:
                by_file[t.split("::")[0]] += duration.get(t, 0.0)
            for file, s in sorted(by_file.items(), key=lambda kv: -kv[1]):
                print(f"{'':35}{s:7.1f} s  {file}")


if __name__ == "__main__":
    main()
