"""`make mutate`'s results survive a fresh clone: tests/mutation_cache.py copies mutmut's own cache (the
`.meta` files and mutmut-stats.json) out of the git-ignored mutants/ and back into an empty one."""
import json
import shutil

import pytest

from tests import mutation_cache


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

    assert "saved 1 .meta files" in mutation_cache.save()
    assert sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()) == [
        "content/access.py.meta", "mutmut-stats.json.gz", "origin.json"]

    assert "already has results" in mutation_cache.restore()   # a mutants/ with results is left as it is
    (mutants / "mutmut-stats.json").unlink()                      # (stats deleted to have them collected again)
    assert "already has results" in mutation_cache.restore()
    assert mutation_cache.restored_from() is None

    shutil.rmtree(mutants)
    assert "restored into mutants/" in mutation_cache.restore()
    assert json.loads((mutants / "content" / "access.py.meta").read_text(encoding="utf-8")) == meta
    assert json.loads((mutants / "mutmut-stats.json").read_text(encoding="utf-8")) == {"duration_by_test": {"t": 0.5}}
    assert not (mutants / "content" / "access.py").exists()   # mutmut makes the mutated copies again
    assert mutation_cache.restored_from().startswith("saved ")


def test_nothing_saved_means_a_run_from_nothing(places):
    mutants, cache = places
    assert "nothing to save" in mutation_cache.save()
    assert not cache.exists()
    assert "none saved" in mutation_cache.restore()
    assert not mutants.exists()
