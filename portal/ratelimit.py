"""Rate limits counted atomically in Redis (docs/rate-limits.md).

The algorithm is GCRA (the generic cell rate algorithm, as in redis-cell and Stripe's
limiter), run as one Lua script so that checking and counting are a single atomic step:
DRF's cache throttle read the history and wrote it back in two steps, and parallel
clients all read the same history (16 of 32 got through a limit of 10). Why GCRA rather
than a window:

- one key per subject holding one number (the "theoretical arrival time"), so memory and
  work are O(1) whatever the rate — it also limits per source address, where a flood
  from many addresses must not cost a sorted set each (a sliding log would);
- no boundary burst: a fixed window lets 2N through around its edge within a moment;
  GCRA allows a burst of at most N, then one more every period/N;
- the script answers exactly how long until the next request is allowed, which becomes
  `Retry-After` (a 3/min limit says 20 s, not "the rest of the minute").

Time is Redis's own clock (`TIME`), so web servers with skewed clocks agree.

If Redis cannot be reached the limiter fails OPEN: the request is allowed and a warning
logged. Limits protect the service; losing them for a while is better than refusing
every data center's usage batches while Redis is down. After a failure the limiter does
not try Redis again for `RATE_LIMIT_RETRY_SECONDS`, so a hung Redis costs one timeout
and one log line per process and period, not one per request.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

# Redis is local to the web servers; anything slower than this is an outage.
SOCKET_TIMEOUT = 0.25
RETRY_SECONDS = 5.0

# DRF's reading, so every API_RATE_LIMIT that worked still does: the period's first
# letter counts (`100/min`, `5/s`, `1/hour`, `2/day`).
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([smhd])[a-z]*\s*$")

# KEYS[1]: the subject's theoretical arrival time (TAT), integer microseconds.
# ARGV[1]: emission interval (period / limit) in µs; ARGV[2]: the limit (burst size);
# ARGV[3]: "hit" counts the request if it is allowed, "peek" counts nothing, "count"
# counts it even when over the limit (failures keep their own block going).
# Returns {allowed (1/0), microseconds until one more would be allowed}.
GCRA = """
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2]) * interval
local mode = ARGV[3]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - burst - now
local allowed = wait <= 0
if mode == 'count' or (allowed and mode == 'hit') then
  local ttl = math.ceil((new_tat - now) / 1000)
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
end
if allowed then return {1, 0} end
return {0, wait}
"""


@dataclass(frozen=True)
class Rate:
    """`limit` requests per `period` seconds, written like DRF's rates: `100/min`."""

    limit: int
    period: int

    @classmethod
    def parse(cls, text: str | None) -> Rate | None:
        """None (no limit) for an empty setting; a configuration error for nonsense."""
        if not text:
            return None
        match = _RATE.match(str(text).lower())
        if not match or int(match[1]) < 1:
            raise ImproperlyConfigured(f"Rate {text!r}: expected 'N/second|minute|hour|day'.")
        return cls(limit=int(match[1]), period=PERIODS[match[2]])


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Seconds until one more request would be allowed (0 when this one was).
    retry_after: float = 0.0


ALLOWED = Decision(allowed=True)


class _Backend:
    """One Redis client per URL and process, and whether Redis is known to be down."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            health_check_interval=30,
        )
        self.script = self.client.register_script(GCRA)
        self.down_until = 0.0

    def run(self, key: str, rate: Rate, mode: str) -> Decision:
        if time.monotonic() < self.down_until:
            return ALLOWED
        interval = -(-rate.period * 1_000_000 // rate.limit)  # ceil: never more than N
        try:
            allowed, wait = self.script(keys=[key], args=[interval, rate.limit, mode])
        except (redis.RedisError, OSError) as exc:
            retry = getattr(settings, "RATE_LIMIT_RETRY_SECONDS", RETRY_SECONDS)
            self.down_until = time.monotonic() + retry
            logger.warning(
                "Rate limits are off: Redis is unreachable (%s). Requests are let through; "
                "trying again in %s s.",
                exc,
                retry,
            )
            return ALLOWED
        return Decision(allowed=bool(allowed), retry_after=wait / 1_000_000)


_backends: dict[str, _Backend] = {}
_lock = threading.Lock()


def _backend() -> _Backend:
    url = settings.REDIS_URL
    backend = _backends.get(url)
    if backend is None:
        with _lock:
            backend = _backends.setdefault(url, _Backend(url))
    return backend


def reset() -> None:
    """Forget the clients and their "Redis is down" state (tests)."""
    with _lock:
        for backend in _backends.values():
            backend.client.close()
        _backends.clear()


class Limiter:
    """A named limit (`dc`, `auth-failure`) applied to subjects (a data center's id, an
    address). Keys share the cache's prefix, so deployments (and test runs) sharing a
    Redis keep apart."""

    def __init__(self, name: str, rate: Rate) -> None:
        self.name = name
        self.rate = rate

    def key(self, subject: str) -> str:
        prefix = settings.CACHES["default"].get("KEY_PREFIX") or "suanli"
        return f"{prefix}:ratelimit:{self.name}:{subject}"

    def hit(self, subject: str) -> Decision:
        """Count one request if the limit allows it; a refused one is not counted, so a
        client that keeps retrying gets in as soon as `retry_after` says."""
        return _backend().run(self.key(subject), self.rate, "hit")

    def peek(self, subject: str) -> Decision:
        """Would one more be allowed? Counts nothing."""
        return _backend().run(self.key(subject), self.rate, "peek")

    def count(self, subject: str) -> Decision:
        """Count one event even over the limit: events that slipped past a `peek` while
        the limit was being reached push the subject's block further out."""
        return _backend().run(self.key(subject), self.rate, "count")


def address_of(request) -> str:
    """The client address to count per: REMOTE_ADDR (the deployment must make it the
    client's, not a proxy's), IPv6 by its /64 — one host usually holds a whole /64 and
    could otherwise rotate through it."""
    raw = request.META.get("REMOTE_ADDR") or ""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
