"""Fault injection for the examples: tests and the demo arm a named point to fail N times.

A fault point costs one Redis round trip. Arming is shared by every process on the Redis,
so a test can make a job fail inside a real worker process.
"""

from __future__ import annotations

from workers.redis import connection as redis_connection

FAULTS_KEY = "examples:faults"

# Skip `after` passes, then fail `times` passes; atomic, so concurrent jobs never both take one.
_TAKE = """
local after = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':after') or '0')
if after > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':after', -1)
  return 0
end
local times = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':times') or '0')
if times > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':times', -1)
  return 1
end
return 0
"""


class InjectedFault(RuntimeError):
    """A failure armed on purpose (tests, demo traffic)."""


def fault_arm(*, name: str, times: int = 1, after: int = 0) -> None:
    """Make the next ``times`` passes through ``name`` fail, after letting ``after`` pass."""
    redis_connection().hset(FAULTS_KEY, mapping={f"{name}:times": times, f"{name}:after": after})


def fault_disarm(*, name: str) -> None:
    redis_connection().hdel(FAULTS_KEY, f"{name}:times", f"{name}:after")


def fault_point(name: str, exc: type[Exception] = InjectedFault, message: str = "") -> None:
    """Raise ``exc`` if the point is armed; otherwise nothing happens."""
    if redis_connection().eval(_TAKE, 1, FAULTS_KEY, name):
        raise exc(message or f"injected fault at {name}")
