"""Django's Redis cache, failing open: a cache that is down is a cache that misses.

The cache holds nothing that must survive (rate-limit counters of sign-in, cached roles);
Redis down must not turn sign-in into a 500 (issue #16: the allauth login rate limit
read the cache and raised). Each operation that cannot reach Redis is logged (once per
`QUIET_SECONDS` per process, so an outage is not a log flood) and answered as a miss:
`get` gives the default, `set` stores nothing, `incr` raises as for a missing key, and
`add` says True: callers that take a lock by `add` (allauth's rate limits) go on as if
they held it, which is what failing open means for a limit. Short socket time-outs
(settings CACHES OPTIONS) keep a hung Redis from holding requests."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
QUIET_SECONDS = 10.0
_last_warning = 0.0


def _warn(operation: str, error: Exception) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= QUIET_SECONDS:
        _last_warning = now
        log.warning("cache unavailable (%s): %s; answering as a miss", operation, error)


def _failing_open(default: Callable[..., Any]) -> Callable:
    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def run(self: RedisCache, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except (RedisError, OSError) as error:
                _warn(method.__name__, error)
                return default(*args, **kwargs)

        return run

    return decorate


def _missing_key(key: str, *args: Any, **kwargs: Any) -> Any:
    raise ValueError(f"Key '{key}' not found")  # what incr says of a missing key


class ResilientRedisCache(RedisCache):
    get = _failing_open(lambda key, default=None, version=None: default)(RedisCache.get)
    get_many = _failing_open(lambda keys, version=None: {})(RedisCache.get_many)
    has_key = _failing_open(lambda key, version=None: False)(RedisCache.has_key)
    add = _failing_open(lambda *a, **k: True)(RedisCache.add)
    set = _failing_open(lambda *a, **k: None)(RedisCache.set)
    set_many = _failing_open(lambda data, *a, **k: list(data))(RedisCache.set_many)
    touch = _failing_open(lambda *a, **k: False)(RedisCache.touch)
    delete = _failing_open(lambda *a, **k: False)(RedisCache.delete)
    delete_many = _failing_open(lambda *a, **k: None)(RedisCache.delete_many)
    incr = _failing_open(_missing_key)(RedisCache.incr)
    clear = _failing_open(lambda *a, **k: False)(RedisCache.clear)
