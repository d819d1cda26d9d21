"""Login throttling with Redis storage (shared by every API instance), and with Redis down."""
from __future__ import annotations


import pytest
import redis

from tests.conftest import REDIS_URL, make_app, require_redis
from tests.factories import login, member, small_tree



@pytest.fixture()
def rebind_limiter(app, database_url):
    """The limiter is one extension object: give it back its memory storage after the test."""
    yield
    make_app(database_url)
    from handbook.extensions import limiter

    # init_app does not clear the "Redis is dead, use memory" flag of the shared extension object.
    limiter._storage_dead = False
    limiter.reset()


def test_throttle_is_shared_through_redis(app, database_url, rebind_limiter):
    redis.Redis.from_url(require_redis()).flushdb()
    tree = small_tree()
    member("01000001", tree["b1"])
    # Two "instances" of the API sharing one Redis: failures on one count on the other.
    one = make_app(database_url, REDIS_URL=REDIS_URL).test_client()
    two = make_app(database_url, REDIS_URL=REDIS_URL).test_client()
    for client in (one, two, one, two, one):
        assert login(client, "01000001", "wrong").status_code == 401
    assert login(two, "01000001").status_code == 429
    assert any(b"handbook-rl" in key for key in redis.Redis.from_url(REDIS_URL).keys("*"))


def test_redis_down_falls_back_to_memory_and_still_throttles(app, database_url, rebind_limiter):
    tree = small_tree()
    member("01000001", tree["b1"])
    client = make_app(database_url, REDIS_URL="redis://127.0.0.1:1/0").test_client()
    assert login(client, "01000001").status_code == 200  # logins keep working
    for _ in range(5):
        assert login(client, "01000001", "wrong").status_code == 401
    assert login(client, "01000001").status_code == 429
