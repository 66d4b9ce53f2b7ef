"""``RedisBudget``: the cluster-wide budget in Redis, for deployments that run one.

Same semantics as ``PostgresBudget`` (leases of the account's schedule, shared pauses, the server's
clock), with ``bucket.take_lease`` mirrored in a Lua script so that each lease is one atomic round
trip. Postgres stays the default because the warehouse is always there.
"""

from __future__ import annotations

import logging

from reviewlens.errors import ConfigurationError
from reviewlens.rate_budget.base import RateBudget
from reviewlens.rate_budget.bucket import DEFAULT_BURST_S, DEFAULT_SAFETY, Lease, Limits

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "reviewlens:rate_budget:"
DEFAULT_LEASE_S = 0.2
# Idle schedules disappear after this long (a missing one means "nothing leased", which is what idle means).
KEY_TTL_S = 3600

# KEYS[1] schedule hash; ARGV: request_span_s, token_span_s, burst_s, ttl.
# Returns {now, request_start, token_start, paused_until} as strings (Lua numbers would be truncated).
_LEASE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local s = redis.call('HMGET', KEYS[1], 'rt', 'tt', 'pu')
local rt, tt, pu = tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[3]) or 0
local rs, ts, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local earliest = math.max(now - burst, pu)
local r0, t0 = earliest, earliest
if rs > 0 then r0 = math.max(rt, earliest); rt = r0 + rs end
if ts > 0 then t0 = math.max(tt, earliest); tt = t0 + ts end
redis.call('HSET', KEYS[1], 'rt', string.format('%.6f', rt), 'tt', string.format('%.6f', tt),
           'pu', string.format('%.6f', pu))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {string.format('%.6f', now), string.format('%.6f', r0), string.format('%.6f', t0),
        string.format('%.6f', pu)}
"""

# KEYS[1] schedule hash; ARGV: seconds, ttl.
_PAUSE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local pu = tonumber(redis.call('HGET', KEYS[1], 'pu')) or 0
redis.call('HSET', KEYS[1], 'pu', string.format('%.6f', math.max(pu, now + tonumber(ARGV[1]))))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

# KEYS[1] schedule hash; ARGV: request_from, request_end, token_from, token_end (bucket.give_back).
_GIVE_BACK_LUA = """
local s = redis.call('HMGET', KEYS[1], 'rt', 'tt')
local rt, tt = tonumber(s[1]), tonumber(s[2])
local rf, re, tf, te = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if rt and rf < re and math.abs(rt - re) < 1e-5 then
  redis.call('HSET', KEYS[1], 'rt', string.format('%.6f', rf))
end
if tt and tf < te and math.abs(tt - te) < 1e-5 then
  redis.call('HSET', KEYS[1], 'tt', string.format('%.6f', tf))
end
return 1
"""


class RedisBudget(RateBudget):
    """The account's schedule in a Redis hash, leased with one atomic Lua call per lease."""

    def __init__(
        self,
        url: str,
        account_key: str,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        safety: float = DEFAULT_SAFETY,
        burst_s: float = DEFAULT_BURST_S,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        import redis.asyncio as aioredis  # optional dependency: imported only when chosen

        super().__init__(Limits(requests_per_minute, tokens_per_minute, safety, burst_s), lease_s=lease_s)
        self._redis = aioredis.Redis.from_url(url)
        self._key = prefix + account_key
        self._lease_script = self._redis.register_script(_LEASE_LUA)
        self._pause_script = self._redis.register_script(_PAUSE_LUA)
        self._give_back_script = self._redis.register_script(_GIVE_BACK_LUA)
        self._ever_answered = False

    def __repr__(self) -> str:
        return f"RedisBudget(limits={self.limits!r}, lease_s={self.lease_s})"

    async def _take(self, request_span_s: float, token_span_s: float) -> Lease | None:
        import redis.exceptions

        args = [request_span_s, token_span_s, self.limits.burst_s, KEY_TTL_S]
        try:
            now, request_start, token_start, paused_until = await self._lease_script(
                keys=[self._key], args=args
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            if not self._ever_answered:
                raise ConfigurationError(f"cannot reach the rate-budget Redis: {exc}") from None
            log.warning("rate-budget Redis unavailable (%s); retrying the lease", type(exc).__name__)
            return None
        self._ever_answered = True
        return Lease(
            now=float(now),
            request_start=float(request_start),
            request_span_s=request_span_s,
            token_start=float(token_start),
            token_span_s=token_span_s,
            paused_until=float(paused_until),
        )

    async def _publish_pause(self, seconds: float) -> None:
        import redis.exceptions

        try:
            await self._pause_script(keys=[self._key], args=[seconds, KEY_TTL_S])
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("could not share a pause through Redis (%s)", type(exc).__name__)

    async def _give_back(
        self, request_from: float, request_end: float, token_from: float, token_end: float
    ) -> None:
        if self._ever_answered:
            await self._give_back_script(
                keys=[self._key], args=[request_from, request_end, token_from, token_end]
            )

    async def aclose(self) -> None:
        await super().aclose()
        await self._redis.aclose()
