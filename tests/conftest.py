"""Test fixtures: the real app on a real database, SQLite and (when reachable) PostgreSQL.

Every test runs once per backend. The schema is created by running the migrations (so a model change
without a migration fails the suite), and every table is emptied after each test.
"""
from __future__ import annotations

import os
import tempfile

import pytest
from sqlalchemy import text

from config import TestConfig, normalise_database_url

# Hypothesis keeps its example database and caches (e.g. the constants it reads from the modules under
# test, written while the tests are collected) in a home folder: a temporary one for the whole run, never
# .hypothesis/ in the checkout. Set before any test module imports hypothesis strategies.
_HYPOTHESIS_HOME = tempfile.TemporaryDirectory(prefix="handbook-test-hypothesis-")
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", _HYPOTHESIS_HOME.name)

PG_URL = normalise_database_url(os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def require_redis() -> str:
    """The test Redis URL; the test is skipped when Redis is not running (and fails in CI, which has it)."""
    import redis

    try:
        up = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        up = False
    if not up:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is not reachable at {REDIS_URL} (required in CI)")
        pytest.skip("Redis not reachable")
    return REDIS_URL


def _postgres_reachable(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


def _backends() -> list[str]:
    chosen = os.environ.get("TEST_BACKENDS", "sqlite,postgresql")
    return [b.strip() for b in chosen.split(",") if b.strip()]


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", _backends(), scope="session")


# `make mutate` only (mutmut sets MUTANT_UNDER_TEST to the mutant's name in the process that runs its
# tests; never set under `make test`): tests that cannot tell a mutant of these modules from the real code
# and are left out of its run (docs/mutation.md, "What one mutant costs"). The authorisation matrix's
# cells check one HTTP status per caller; progress counters and the push fan-out never decide a status
# (they sit behind the checks of content.access / handbook.permissions, which keep the matrix), and the
# cells were 58 of the 138 s a surviving mutant of content.progress's counting functions cost.
MUTATION_DESELECT = {
    "content.progress.": ("tests/test_authz_matrix.py::test_cell[",),
    "push.fanout.": ("tests/test_authz_matrix.py::test_cell[",),
}


# Also under `make mutate` only: mutmut hands pytest a mutant's tests as node ids in no order (a set), so
# files interleave and every module-scoped fixture (the fake FCM server, the matrix's worlds) is set up
# again at each switch. They are grouped by file, the mutated module's own test files first (the
# likeliest to fail, and with -x the first failure ends the run), fastest first within a file (clean
# durations from mutmut's stats). Which tests run does not change. (tests.mutation_postgresql also runs
# these files whole, for their PostgreSQL-only tests — test_progress.py has content.access's lock tests —
# and for the files outside setup.cfg's selection, test_push_batches.py and test_refresh_grace.py: changing
# that selection makes mutmut drop every verdict.)
MUTATION_FIRST = {
    "content.progress.": ("tests/test_progress.py",),
    "content.acknowledgements.": ("tests/test_acknowledgements.py", "tests/test_progress.py"),
    "content.access.": ("tests/test_feed.py", "tests/test_acknowledgements.py", "tests/test_progress.py"),
    "handbook.auth.": ("tests/test_refresh_grace.py", "tests/test_auth.py"),
    "handbook.permissions.": ("tests/test_authz_matrix.py",),
    "push.schedule.": ("tests/test_push.py", "tests/test_push_adversarial.py"),
    "push.fanout.": ("tests/test_push.py", "tests/test_push_adversarial.py", "tests/test_push_batches.py"),
}


def _clean_durations() -> dict[str, float]:
    """Each test's clean duration from mutmut's stats (the run's working folder is mutants/)."""
    import json

    try:
        with open("mutmut-stats.json", encoding="utf-8") as f:
            return json.load(f).get("duration_by_test", {})
    except (OSError, ValueError):
        return {}


def pytest_collection_modifyitems(config, items):
    mutant = os.environ.get("MUTANT_UNDER_TEST")
    if mutant is None:
        return
    # (Also mutmut's clean run, "" — the same tests in the same order as a mutant's, so that it checks the
    # order the mutants' runs use — and its trace, "stats".)
    prefixes = None
    if "__mutmut_" in mutant:
        # A failing Hypothesis test is a killed mutant: shrinking the example only makes the report nicer,
        # and on a mutant that breaks every example it ran past mutmut's time limit (a "timeout" instead of
        # a kill).
        from hypothesis import Phase, settings

        settings.register_profile("mutmut", phases=[Phase.explicit, Phase.reuse, Phase.generate])
        settings.load_profile("mutmut")
        prefixes = next((p for m, p in MUTATION_DESELECT.items() if mutant.startswith(m)), None)
    if prefixes:
        keep = [i for i in items if not i.nodeid.startswith(prefixes)]
        if keep and len(keep) < len(items):   # never deselect every test (that would be "no tests")
            config.hook.pytest_deselected(items=[i for i in items if i.nodeid.startswith(prefixes)])
            items[:] = keep
    first = next((f for m, f in MUTATION_FIRST.items() if mutant.startswith(m)), ())
    durations = _clean_durations()

    def order(item):
        file, line, _ = item.location
        # (mutmut's stats were taken on SQLite: a PostgreSQL test (tests.mutation_postgresql) takes its
        # SQLite twin's duration.)
        clean = durations.get(item.nodeid, durations.get(item.nodeid.replace("[postgresql", "[sqlite", 1), 0.0))
        return (first.index(file) if file in first else len(first), file, clean,
                line or 0, item.nodeid)

    items.sort(key=order)


# Also under `make mutate` only (mutmut's stats, clean and mutant runs all set MUTANT_UNDER_TEST): what a
# process builds once and keeps is built again for every test. Statements cached with functools.cache
# call content.access's conditions (and the like) only the first time; mutmut traces which tests call a
# function, so only the first test of the run was tied to them, and their mutants were run against that
# one test (false survivors), or, built before the mutant was chosen, never ran at all. Likewise the
# verified-token wrapper that handbook.auth installs at import time is installed again per test.
def _forget_per_process_state() -> None:
    import functools
    import sys

    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("content.", "handbook.", "push.", "api.", "console.")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, functools._lru_cache_wrapper):   # functools.cache and lru_cache
                value.cache_clear()
        # Compiled forms keyed by id() of the statements above (content.acknowledgements, handbook.auth):
        # once those are freed, a new statement can get a freed one's id and would find its SQL.
        if isinstance(getattr(module, "_COMPILED", None), dict):
            module._COMPILED.clear()
    if "content.meetings" in sys.modules:
        sys.modules["content.meetings"]._TREES.clear()
        sys.modules["content.meetings"]._STATS.clear()
    if "handbook.auth" in sys.modules:
        from handbook.extensions import jwt

        sys.modules["handbook.auth"]._remember_verified_tokens(jwt)


@pytest.fixture(autouse=True)
def _fresh_per_process_state_under_mutmut():
    if "MUTANT_UNDER_TEST" in os.environ:
        _forget_per_process_state()
    yield


@pytest.fixture(scope="session")
def database_url(backend, tmp_path_factory):
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    if not _postgres_reachable(PG_URL):
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL} (required in CI)")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    return PG_URL


def _reset_schema(app) -> None:
    from handbook.extensions import db

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))


# Uploaded files of the whole run go to one temporary folder, never into the repository's instance/.
_ATTACHMENTS = tempfile.TemporaryDirectory(prefix="handbook-test-attachments-")


# The apps' instance folder (the embedded push worker's lock file, push-worker.lock, ...): a temporary one
# for the whole run, never the repository's instance/.
_INSTANCE = tempfile.TemporaryDirectory(prefix="handbook-test-instance-")


def make_app(database_url: str, **overrides):
    from handbook import create_app

    settings = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    settings.update(SQLALCHEMY_DATABASE_URI=database_url, ATTACHMENT_STORAGE_DIR=_ATTACHMENTS.name, **overrides)
    app = create_app(settings)
    app.instance_path = _INSTANCE.name
    return app


@pytest.fixture(scope="session")
def _session_app(database_url):
    from flask_migrate import upgrade

    app = make_app(database_url)
    _reset_schema(app)
    with app.app_context():
        upgrade()
    yield app
    from handbook.extensions import db

    with app.app_context():
        db.engine.dispose()


@pytest.fixture()
def app(_session_app):
    from handbook.extensions import limiter

    limiter.reset()
    with _session_app.app_context():
        yield _session_app
        empty_tables()


def empty_tables() -> None:
    """Every table emptied (in the app context), ids restarting at 1 on PostgreSQL."""
    from handbook.extensions import db

    db.session.rollback()
    db.session.remove()
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
            conn.execute(text("DELETE FROM document_fts"))  # search index, outside the metadata


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def tmpdir_path():
    with tempfile.TemporaryDirectory() as d:
        yield d


@pytest.fixture(scope="module")
def fake_fcm():
    """The project's fake FCM server (push/fakefcm.py), one per test module."""
    from push.fakefcm import FakeFcm

    with FakeFcm() as fake:
        yield fake


@pytest.fixture()
def fcm(app, fake_fcm):
    """The app sends through firebase-admin to the fake FCM for this test (records cleared first)."""
    saved = {k: app.config.get(k) for k in ("PUSH_BACKEND", "FCM_ENDPOINT", "FCM_PROJECT_ID")}
    app.config.update(PUSH_BACKEND="fcm", FCM_ENDPOINT=fake_fcm.url, FCM_PROJECT_ID="so-tay-dang-vien-test")
    fake_fcm.reset()
    yield fake_fcm
    app.config.update(saved)


# --- worlds shared by several modules (a module may override any of them) ------------------------

@pytest.fixture()
def tree(app):
    """The small org tree of tests/factories.py: city → 2 districts → grassroots → branches."""
    from tests.factories import small_tree

    return small_tree()


@pytest.fixture()
def api(client, tree):
    """tests/test_acknowledgements.py's world of 12 members on `tree`, and its HTTP helper."""
    from tests.test_acknowledgements import Api, make_world

    make_world(tree)
    return Api(client, tree)


@pytest.fixture()
def world(client, tree, fcm):
    """tests/test_push.py's world: the members above with their phones, sending to the fake FCM."""
    from tests.test_push import push_world

    return push_world(client, tree)
