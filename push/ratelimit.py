"""The cap on pushes sent per minute (`FCM_RATE_PER_MINUTE`), shared by every worker.

A generic cell rate algorithm (GCRA): the state is one "theoretical arrival time" (TAT). Taking `n`
messages moves it `n` emission intervals forward; a caller whose new TAT would run further ahead of now
than the allowed burst waits the difference. With Redis (`REDIS_URL`) the TAT lives in Redis and a Lua
script updates it atomically, so all workers on all machines share the cap; without Redis it lives in
the process. `pause(seconds)` pushes the TAT forward, so a 429 with `Retry-After` seen by one worker
slows every worker down, as FCM asks.
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("handbook.push")

_KEY = "handbook:push:fcm-tat"
# KEYS[1]: tat key. ARGV: now (s), cost (s), burst (s), pause (s). Returns the seconds to wait (0: granted).
_SCRIPT = """
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local pause = tonumber(ARGV[4])
if pause > 0 then
  -- past the burst allowance too, so that nobody sends before the pause is over
  local until_ = now + pause + tonumber(ARGV[3])
  if tat < until_ then tat = until_ end
  redis.call('SET', KEYS[1], tostring(tat), 'EX', math.ceil(tat - now) + 60)
  return '0'
end
local new = tat + tonumber(ARGV[2])
local wait = new - tonumber(ARGV[3]) - now
if wait > 0 then return tostring(wait) end
redis.call('SET', KEYS[1], tostring(new), 'EX', math.ceil(new - now) + 60)
return '0'
"""


class RateLimiter:
    """`timeout`: seconds a Redis operation may take. After a failure the cap is kept in this process,
    and Redis is asked again only after `retry_seconds`, so that a Redis that does not answer (frozen,
    half-open connection) costs one timeout now and then rather than one per batch."""

    def __init__(self, per_minute: int, redis_url: str | None = None, burst_seconds: float = 1.0,
                 timeout: float = 5.0, retry_seconds: float = 15.0) -> None:
        self.interval = 60.0 / max(1, per_minute)
        self.burst = burst_seconds
        self._tat = 0.0
        self._lock = threading.Lock()
        self._redis = None
        self._retry_seconds = retry_seconds
        self._redis_down_until = 0.0
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
            self._script = self._redis.register_script(_SCRIPT)

    def _try(self, cost: float, pause: float = 0.0) -> float:
        now = time.time()
        if self._redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                return float(self._script(keys=[_KEY], args=[now, cost, self.burst, pause]))
            except Exception as error:  # noqa: BLE001 - Redis down: keep capping in this process
                self._redis_down_until = time.monotonic() + self._retry_seconds
                log.warning("push rate limit: Redis unavailable (%s); limiting in this process for %.0f s",
                            error, self._retry_seconds)
            now = time.time()
        with self._lock:
            tat = max(self._tat, now)
            if pause > 0:
                self._tat = max(tat, now + pause + self.burst)
                return 0.0
            new = tat + cost
            wait = new - self.burst - now
            if wait > 0:
                return wait
            self._tat = new
            return 0.0

    def acquire(self, n: int) -> float:
        """Block until `n` messages may go; returns the seconds waited. A batch larger than the burst
        is taken in burst-sized parts."""
        waited = 0.0
        step = max(1, int(self.burst / self.interval))
        while n > 0:
            take = min(n, step)
            wait = self._try(take * self.interval)
            if wait > 0:
                time.sleep(wait)
                waited += wait
                continue
            n -= take
        return waited

    def pause(self, seconds: float) -> None:
        """Nobody sends for `seconds` (FCM asked us to back off)."""
        self._try(0.0, pause=seconds)
