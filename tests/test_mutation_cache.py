"""`make mutate`'s results survive a fresh clone: tests/mutation_cache.py copies mutmut's own cache (the
`.meta` files and mutmut-stats.json), and the verdicts on PostgreSQL, out of the git-ignored mutants/ and
back into an empty one. And tests/mutation_postgresql.py picks the mutants SQLite cannot judge, and the
tests to judge them with on PostgreSQL."""
import json
import shutil

import pytest

from tests import mutation_cache, mutation_postgresql, mutation_report


@pytest.fixture()
def places(tmp_path, monkeypatch):
    mutants, cache = tmp_path / "mutants", tmp_path / "cache"
    monkeypatch.setattr(mutation_cache, "MUTANTS", mutants)
    monkeypatch.setattr(mutation_cache, "CACHE", cache)
    return mutants, cache


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_saved_results_are_restored_into_an_empty_mutants_folder_only(places):
    mutants, cache = places
    meta = {"exit_code_by_key": {"content.access.x_f__mutmut_1": 1, "content.access.x_f__mutmut_2": 0},
            "hash_by_function_name": {"f": "abc"}}
    _write(mutants / "content" / "access.py.meta", meta)
    _write(mutants / "mutmut-stats.json", {"duration_by_test": {"t": 0.5}})
    (mutants / "content" / "access.py").write_text("mutated copy, not kept", encoding="utf-8")
    _write(mutants / "tests" / "mutation-cache" / "content" / "access.py.meta", meta)   # mutmut's copy of tests/
    verdicts = {"content.access.x_f__mutmut_3": {"verdict": "killed", "hash": "abc"}}   # judged on PostgreSQL
    _write(mutants / "postgresql-verdicts.json", verdicts)

    assert "saved 1 .meta files" in mutation_cache.save()
    assert sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()) == [
        "content/access.py.meta", "mutmut-stats.json.gz", "origin.json", "postgresql-verdicts.json"]

    assert "already has results" in mutation_cache.restore()   # a mutants/ with results is left as it is
    (mutants / "mutmut-stats.json").unlink()                      # (stats deleted to have them collected again)
    assert "already has results" in mutation_cache.restore()
    assert mutation_cache.restored_from() is None

    shutil.rmtree(mutants)
    assert "restored into mutants/" in mutation_cache.restore()
    assert json.loads((mutants / "content" / "access.py.meta").read_text(encoding="utf-8")) == meta
    assert json.loads((mutants / "mutmut-stats.json").read_text(encoding="utf-8")) == {"duration_by_test": {"t": 0.5}}
    assert json.loads((mutants / "postgresql-verdicts.json").read_text(encoding="utf-8")) == verdicts
    assert not (mutants / "content" / "access.py").exists()   # mutmut makes the mutated copies again
    assert mutation_cache.restored_from().startswith("saved ")


def test_nothing_saved_means_a_run_from_nothing(places):
    mutants, cache = places
    assert "nothing to save" in mutation_cache.save()
    assert not cache.exists()
    assert "none saved" in mutation_cache.restore()
    assert not mutants.exists()


SOURCE = """
def _compiled(stmt):
    return stmt

def _pipelined(conn, writes):
    return [_compiled(s) for s in writes]

def acknowledge(member):
    _pipelined(None, [member])

class _State:
    def brief(self):
        return acknowledge(self)
"""


def test_a_function_only_postgresql_calls_is_judged_by_the_tests_of_its_nearest_traced_callers():
    stats = {"tests_by_mangled_function_name": {
        "content.acknowledgements.x_acknowledge": ["tests/test_a.py::test_ack[sqlite]", "tests/test_a.py::test_x[sqlite-2]"],
        "content.acknowledgements.xǁ_Stateǁbrief": ["tests/test_b.py::test_brief[sqlite]"],
        "content.acknowledgements.x__pipelined": [],
    }}
    tests = mutation_postgresql.tests_for
    module = "content.acknowledgements"
    # Untraced two levels down: acknowledge's tests (not _State.brief's, one level further), on PostgreSQL.
    assert tests(module, "_compiled", SOURCE, stats) == [
        "tests/test_a.py::test_ack[postgresql]", "tests/test_a.py::test_x[postgresql-2]"]
    assert tests(module, "acknowledge", SOURCE, stats) == tests(module, "_pipelined", SOURCE, stats)
    assert tests(module, "_State.brief", SOURCE, stats) == ["tests/test_b.py::test_brief[postgresql]"]
    assert mutation_postgresql._function_of(f"{module}.xǁ_Stateǁbrief__mutmut_4", module) == "_State.brief"
    assert mutation_postgresql._function_of(f"{module}.x__compiled__mutmut_12", module) == "_compiled"
    # Plus the module's own test files whole: SQLite skips the PostgreSQL-only tests, so mutmut tied them to nothing.
    from tests.conftest import MUTATION_FIRST

    assert mutation_postgresql.own_test_files(module, MUTATION_FIRST) == ["tests/test_acknowledgements.py",
                                                                         "tests/test_progress.py"]
    assert mutation_postgresql.own_test_files("content.access", MUTATION_FIRST)[0] == "tests/test_feed.py"


def test_what_is_judged_on_postgresql():
    statuses = {"m.x_a__mutmut_1": "no tests", "m.x_a__mutmut_2": "no tests", "m.x_b__mutmut_1": "survived",
                "m.x_b__mutmut_2": "survived", "m.x_b__mutmut_3": "killed", "m.x_c__mutmut_1": "not checked"}
    statuses["m.x_b__mutmut_4"] = statuses["m.x_b__mutmut_5"] = "survived"
    entries = {"m.x_b__mutmut_1": ("pin", "PostgreSQL only: the lock left out"),
               "m.x_b__mutmut_2": ("pin", "equivalent: the same rows"),
               "m.x_b__mutmut_4": ("pin", "Outside mutmut's selection: killed by tests/test_other.py::test_x")}
    statuses["m.x_c__mutmut_2"] = statuses["m.x_c__mutmut_3"] = "not checked"
    entries["m.x_c__mutmut_2"] = ("pin", "PostgreSQL only: in the PostgreSQL branch")
    entries["m.x_c__mutmut_3"] = ("pin", "equivalent: the same rows")
    judged = {"m.x_a__mutmut_2": "killed", "m.x_b__mutmut_1": "survived"}
    # SQLite's "no tests", its unexplained survivors and those explained as PostgreSQL-only or killed outside
    # mutmut's selection (not those explained as equivalent), and the mutants not run yet that are explained
    # as PostgreSQL-only code, unless already killed here.
    assert mutation_postgresql.wanted(statuses, entries, judged) == ["m.x_a__mutmut_1", "m.x_b__mutmut_1",
                                                                     "m.x_b__mutmut_4", "m.x_b__mutmut_5",
                                                                     "m.x_c__mutmut_2"]
    # ... which is what make mutate leaves out of its run on SQLite: the survivors explained for their diff,
    # and the PostgreSQL-only code not run yet (only when pinned to its diff).
    pinned = {"m.x_b__mutmut_1", "m.x_b__mutmut_2", "m.x_b__mutmut_4", "m.x_c__mutmut_2", "m.x_c__mutmut_3"}
    assert mutation_report.not_run_on_sqlite(statuses, entries, pinned.__contains__) == {
        "m.x_b__mutmut_1", "m.x_b__mutmut_2", "m.x_b__mutmut_4", "m.x_c__mutmut_2"}
    assert mutation_report.not_run_on_sqlite(statuses, entries, lambda name: False) == set()
    # What mutmut is given again: all but the detected (a timeout is a hang the tests caught).
    assert mutation_report.undetected({**statuses, "m.x_d__mutmut_1": "timeout"}) == set(statuses) - {"m.x_b__mutmut_3"}
    # A verdict holds while its function's source is the one it was judged on.
    verdicts = {"m.x_a__mutmut_2": {"verdict": "killed", "hash": "h1"}, "m.x_b__mutmut_1": {"verdict": "killed", "hash": "old"}}
    assert mutation_postgresql.current(verdicts, {"m.x_a__mutmut_2": "h1", "m.x_b__mutmut_1": "new"}) == {
        "m.x_a__mutmut_2": "killed"}


def _project(tmp_path, monkeypatch, files: dict[str, str]):
    root = tmp_path / "project"
    for name, text in files.items():
        (root / "tests").mkdir(parents=True, exist_ok=True)
        (root / "tests" / name).write_text(text, encoding="utf-8")
    monkeypatch.setattr(mutation_cache, "ROOT", root)
    monkeypatch.setattr(mutation_cache, "MUTANTS", root / "mutants")
    return root


TESTS_A = '''
import pytest

def helper():
    return 1

def test_same():
    assert helper() == 1

@pytest.mark.parametrize("n", [1, 2])
def test_changed(n):
    assert n

class TestGroup:
    def test_method(self):
        assert True
'''


def _stats(*tests: str) -> dict:
    return {"duration_by_test": dict.fromkeys(tests, 0.1), "git_commit": "",
            "tests_by_mangled_function_name": {"m.x_f": list(tests), "m.x_g": [tests[0]]}}


def test_retrace_forgets_what_the_tests_changed_since_their_trace_called(tmp_path, monkeypatch):
    """mutmut keeps a test's trace while its name stays; retrace drops the traces of tests whose source (with
    decorators) changed since, so that mutmut traces them again as new tests; an unchanged test keeps its."""
    root = _project(tmp_path, monkeypatch, {"test_a.py": TESTS_A})
    traced = ["tests/test_a.py::test_same[sqlite]", "tests/test_a.py::test_changed[sqlite-1]",
              "tests/test_a.py::test_changed[sqlite-2]", "tests/test_a.py::TestGroup::test_method[sqlite]"]
    _write(root / "mutants" / "mutmut-stats.json", _stats(*traced))
    _write(root / "mutants" / "test-sources.json", mutation_cache.test_sources())
    assert mutation_cache.retrace() == "mutation cache: no traced test changed since the last trace"
    # A decorator's parameters and a method's body change; a helper's body is not a test's source.
    (root / "tests" / "test_a.py").write_text(TESTS_A.replace("[1, 2]", "[1, 3]").replace(
        "assert True", "assert not False").replace("return 1", "return 2"), encoding="utf-8")
    assert mutation_cache.retrace() == "mutation cache: 3 traced tests changed since the last trace, mutmut traces them again"
    stats = json.loads((root / "mutants" / "mutmut-stats.json").read_text(encoding="utf-8"))
    assert list(stats["duration_by_test"]) == ["tests/test_a.py::test_same[sqlite]"]
    assert stats["tests_by_mangled_function_name"] == {"m.x_f": ["tests/test_a.py::test_same[sqlite]"],
                                                      "m.x_g": ["tests/test_a.py::test_same[sqlite]"]}
    assert mutation_cache.retrace() == "mutation cache: no traced test changed since the last trace"


def test_without_a_record_retrace_compares_with_the_commit_of_mutmuts_last_full_trace(tmp_path, monkeypatch):
    import subprocess

    root = _project(tmp_path, monkeypatch, {"test_a.py": TESTS_A})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*git, "add", "tests"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "tests"], cwd=root, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    (root / "tests" / "test_a.py").write_text(TESTS_A.replace("helper() == 1", "helper() != 0") + (
        "\n\ndef test_added_since():\n    assert 1\n"), encoding="utf-8")
    (root / "tests" / "test_b.py").write_text("def test_b():\n    assert 2\n", encoding="utf-8")
    traced = ["tests/test_a.py::test_same[sqlite]", "tests/test_a.py::test_changed[sqlite-1]",
              "tests/test_a.py::test_added_since[sqlite]", "tests/test_b.py::test_b[sqlite]"]
    unknown = _stats(*traced)
    _write(root / "mutants" / "mutmut-stats.json", unknown)
    assert "cannot tell which tests changed" in mutation_cache.retrace()   # no commit to compare with
    subprocess.run([*git, "add", "tests"], cwd=root, check=True)   # (not the index's sources either)
    assert "cannot tell which tests changed" in mutation_cache.retrace()
    assert json.loads((root / "mutants" / "mutmut-stats.json").read_text(encoding="utf-8")) == unknown
    _write(root / "mutants" / "mutmut-stats.json", {**unknown, "git_commit": commit})
    # test_same changed; the two added since the commit were traced with a source nobody recorded: again.
    assert mutation_cache.retrace() == (f"mutation cache: 3 traced tests changed since commit {commit[:10]}, "
                                        "mutmut traces them again")
    stats = json.loads((root / "mutants" / "mutmut-stats.json").read_text(encoding="utf-8"))
    assert list(stats["duration_by_test"]) == ["tests/test_a.py::test_changed[sqlite-1]"]
    assert json.loads((root / "mutants" / "test-sources.json").read_text(encoding="utf-8")) == \
        mutation_cache.test_sources()


def test_an_explanation_that_promises_a_kill_on_postgresql_explains_nothing_while_the_mutant_survives_there():
    claims = mutation_postgresql.claims_a_kill
    assert claims("PostgreSQL only: the lock left out; killed by tests/test_x.py::test_y")
    assert claims("Outside mutmut's selection: killed by tests/test_push_batches.py::test_z")
    assert claims("PostgreSQL only, not equivalent: a real change only PostgreSQL's tests see")
    assert not claims("PostgreSQL only, equivalent: the same rows, one statement each")
    assert not claims("Outside mutmut's selection, equivalent: NOT IN an empty list is always true")
    assert not claims("`synchronize_session=None`: equivalent, nothing synchronised")   # not judged there
