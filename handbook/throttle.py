"""Attempt budgets for password checks (login, password change), spent *before* the check.

Flask-Limiter's `deduct_when` counts a failure only after the response, so parallel guesses all pass
the check first. Here each attempt takes one unit of budget atomically (Redis or process memory,
whichever the limiter uses) before argon2 runs; a success gives the budget back, so the budget counts
failed attempts since the last success.
"""
from __future__ import annotations

import logging
import math
import time

from flask import current_app
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from handbook.errors import ProblemError
from handbook.extensions import limiter

log = logging.getLogger("handbook.throttle")
_fallback = MovingWindowRateLimiter(MemoryStorage())


def _strategy():
    try:
        return limiter.limiter
    except Exception:  # noqa: BLE001 - limiter not initialised or storage broken
        return _fallback


def _run(action):
    """Run against the shared storage; if Redis is down, keep throttling in process memory."""
    try:
        return action(_strategy())
    except Exception as e:  # noqa: BLE001 - storage errors must not open the gate or answer 500
        log.warning("throttle storage unavailable (%s); using process memory", type(e).__name__)
        return action(_fallback)


def spend(scope: str, key: str, limits_setting: str) -> None:
    """Take one attempt from every limit of `limits_setting`; 429 `rate_limited` when one is exhausted."""
    for item in parse_many(current_app.config[limits_setting]):
        if not _run(lambda s, item=item: s.hit(item, scope, key)):
            _refuse(item, scope, key)


def _refuse(item, scope: str, key: str):
    reset = _run(lambda s: s.get_window_stats(item, scope, key).reset_time)
    retry = max(1, math.ceil(reset - time.time()))
    raise ProblemError("rate_limited", 429, headers={"Retry-After": retry}, retry_after=retry)


def refund(scope: str, key: str, limits_setting: str) -> None:
    """After a success: the failed-attempt budget starts afresh."""
    for item in parse_many(current_app.config[limits_setting]):
        _run(lambda s, item=item: s.clear(item, scope, key))


def ensure(scope: str, key: str, limits_setting: str) -> None:
    """429 `rate_limited` when a budget of `limits_setting` is already spent (nothing is taken): for
    budgets of failures only, charged after the check with `charge`."""
    for item in parse_many(current_app.config[limits_setting]):
        if not _run(lambda s, item=item: s.test(item, scope, key)):
            _refuse(item, scope, key)


def charge(scope: str, key: str, limits_setting: str) -> None:
    """Count one failure against every limit of `limits_setting`."""
    for item in parse_many(current_app.config[limits_setting]):
        _run(lambda s, item=item: s.hit(item, scope, key))
