"""``RedisBudget``: the cluster-wide budget in Redis, for deployments that run one.

Same semantics as ``PostgresBudget`` (leases from one bucket per account, shared pauses, the
server's clock), with the arithmetic of ``bucket.py`` mirrored in a Lua script so that each lease is
one atomic round trip. Postgres stays the default because the warehouse is always there.
"""

from __future__ import annotations

import logging

from reviewlens.errors import ConfigurationError
from reviewlens.rate_budget.base import RateBudget
from reviewlens.rate_budget.bucket import DEFAULT_BURST_S, DEFAULT_SAFETY, Grant, Limits

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "reviewlens:rate_budget:"
DEFAULT_LEASE_S = 0.2
# Idle buckets disappear after this long (a new one starts full, which is what idle means).
KEY_TTL_S = 3600
RECONNECT_WAIT_S = 0.5

# KEYS[1] bucket hash; ARGV: want_requests, need_tokens, want_tokens, request_rate, request_capacity,
# token_rate, token_capacity (a rate < 0 means unlimited), ttl. Returns {requests, tokens, wait_s}.
_GRANT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local s = redis.call('HMGET', KEYS[1], 'rl', 'tl', 'ua', 'pu')
local rl, tl = tonumber(s[1]) or 0, tonumber(s[2]) or 0
local ua, pu = tonumber(s[3]) or 0, tonumber(s[4]) or 0
local want_r, need_t, want_t = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rr, rc, tr, tc = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if now < pu then return {0, '0', tostring(pu - now)} end
local elapsed = math.max(0, now - ua)
if rr >= 0 then rl = math.min(rc, rl + rr * elapsed) end
if tr >= 0 then tl = math.min(tc, tl + tr * elapsed) end
ua = math.max(ua, now)
local wait = 0
local threshold_r = math.max(1, math.min(want_r, math.floor(math.max(rc * 0.25, math.min(rc, 2)))))
if rr >= 0 and rl < threshold_r then wait = math.max(wait, (threshold_r - rl) / rr) end
local threshold = math.max(need_t, math.min(want_t, tc * 0.25))
if tr >= 0 and tc < threshold then threshold = tc end
if tr >= 0 and tl < threshold then wait = math.max(wait, (threshold - tl) / tr) end
local gr, gt = 0, 0
if wait <= 0 then
  gr = want_r
  if rr >= 0 then gr = math.max(1, math.min(want_r, math.floor(rl))); rl = rl - gr end
  gt = want_t
  if tr >= 0 then gt = math.max(need_t, math.min(want_t, tl)); tl = tl - gt end
end
redis.call('HSET', KEYS[1], 'rl', tostring(rl), 'tl', tostring(tl), 'ua', tostring(ua), 'pu', tostring(pu))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[8]))
return {gr, tostring(gt), tostring(wait)}
"""

# KEYS[1] bucket hash; ARGV: seconds, drain (1/0), ttl.
_PAUSE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local s = redis.call('HMGET', KEYS[1], 'rl', 'tl', 'ua', 'pu')
local rl, tl = tonumber(s[1]) or 0, tonumber(s[2]) or 0
local ua, pu = tonumber(s[3]) or 0, tonumber(s[4]) or 0
local untl = math.max(pu, now + tonumber(ARGV[1]))
if ARGV[2] == '1' then
  rl = math.min(rl, 0); tl = math.min(tl, 0); ua = math.max(ua, untl)
end
redis.call('HSET', KEYS[1], 'rl', tostring(rl), 'tl', tostring(tl), 'ua', tostring(ua), 'pu', tostring(untl))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


class RedisBudget(RateBudget):
    """The account's budget in a Redis hash, leased with one atomic Lua call per lease."""

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

        super().__init__(Limits(requests_per_minute, tokens_per_minute, safety, burst_s))
        self.lease_s = lease_s
        self._redis = aioredis.Redis.from_url(url)
        self._key = prefix + account_key
        self._grant_script = self._redis.register_script(_GRANT_LUA)
        self._pause_script = self._redis.register_script(_PAUSE_LUA)
        self._ever_answered = False

    def __repr__(self) -> str:
        return f"RedisBudget(limits={self.limits!r}, lease_s={self.lease_s})"

    async def _grant(self, want_requests: int, need_tokens: float, want_tokens: float) -> Grant:
        import redis.exceptions

        limits = self.limits
        rates = (
            limits.request_rate if limits.request_rate is not None else -1.0,
            limits.request_capacity if limits.request_rate is not None else 0.0,
            limits.token_rate if limits.token_rate is not None else -1.0,
            limits.token_capacity if limits.token_rate is not None else 0.0,
        )
        try:
            requests, tokens, wait_s = await self._grant_script(
                keys=[self._key], args=[want_requests, need_tokens, want_tokens, *rates, KEY_TTL_S]
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            if not self._ever_answered:
                raise ConfigurationError(f"cannot reach the rate-budget Redis: {exc}") from None
            log.warning("rate-budget Redis unavailable (%s); retrying the lease", type(exc).__name__)
            return Grant(0, 0.0, wait_s=RECONNECT_WAIT_S)
        self._ever_answered = True
        return Grant(int(requests), float(tokens), wait_s=float(wait_s))

    async def _publish_pause(self, seconds: float, *, drain: bool) -> None:
        import redis.exceptions

        try:
            await self._pause_script(keys=[self._key], args=[seconds, 1 if drain else 0, KEY_TTL_S])
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("could not share a pause through Redis (%s)", type(exc).__name__)

    async def aclose(self) -> None:
        await super().aclose()
        await self._redis.aclose()
