"""The push rate cap (FCM_RATE_PER_MINUTE): shared through Redis by every worker, paused for all by one
worker's Retry-After, and still capping in process memory while Redis is down. These are behaviour
checks with generous bounds (the cap must hold back), not speed targets."""
from __future__ import annotations

import threading
import time

import pytest

from push.ratelimit import RateLimiter
from tests.conftest import require_redis


@pytest.fixture()
def redis_url():
    import redis

    url = require_redis()
    redis.Redis.from_url(url).delete("handbook:push:fcm-tat")
    yield url
    redis.Redis.from_url(url).delete("handbook:push:fcm-tat")


def _take_in_parallel(limiters: list[RateLimiter], each: int) -> float:
    started = time.monotonic()
    threads = [threading.Thread(target=lim.acquire, args=(each,)) for lim in limiters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return time.monotonic() - started


def test_workers_share_one_cap_through_redis(redis_url):
    # 1,200 a minute is 20 a second with a 0.1 s burst: 2 workers × 20 messages need about 2 s together,
    # where each alone (with its own cap) would need 1 s.
    workers = [RateLimiter(1200, redis_url, burst_seconds=0.1) for _ in range(2)]
    assert _take_in_parallel(workers, 20) >= 1.7


def test_without_redis_each_process_caps_itself():
    alone = RateLimiter(1200, None, burst_seconds=0.1)
    started = time.monotonic()
    alone.acquire(20)
    assert 0.8 <= time.monotonic() - started < 5


def test_a_pause_holds_every_worker(redis_url):
    one, other = RateLimiter(600000, redis_url), RateLimiter(600000, redis_url)
    one.pause(0.6)
    started = time.monotonic()
    other.acquire(1)
    assert time.monotonic() - started >= 0.5


def test_redis_down_falls_back_to_the_process(caplog):
    dead = RateLimiter(1200, "redis://127.0.0.1:1/0", burst_seconds=0.1)
    started = time.monotonic()
    dead.acquire(20)
    assert time.monotonic() - started >= 0.8
    assert any("Redis unavailable" in r.getMessage() for r in caplog.records)
