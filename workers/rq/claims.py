"""Claims: which execution of a job may write its outcome, so that a late one never
overwrites a newer attempt.

A jobsite worker takes the job's claim (``CLAIM_KEY``, "<attempt> <worker> <token>") before
it runs an attempt. A watchdog that declares the worker dead revokes the claim in the
transaction that fails the job (the value gets " revoked"), and the next attempt's worker
takes it over. Every outcome a worker writes for its attempt (success, failure, retry, put
back, lost) goes through a ``FencedRedis``: each of its transactions WATCHes the claim and
sends nothing unless the claim is still that execution's own, so a worker cut off while
its job ran, and back after another worker took the job, cannot move the job, its result
or its registries. A job without a claim (run by a plain RQ worker, or the claim expired
with Redis's data) is not fenced: RQ's semantics stay as they are.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from redis import Redis
from redis.client import Pipeline

from ..conf import setting
from ..redis import CLAIM_KEY

REVOKED = " revoked"
# A revoked claim is kept this long: an outcome arriving later than that (a host cut off
# for a day) finds no claim and is not fenced.
REVOKED_TTL = 24 * 3600
# A job without a timeout (-1) keeps its claim this long.
NO_TIMEOUT_TTL = 24 * 3600


@dataclass(frozen=True)
class Claim:
    """One execution's claim on one attempt of a job."""

    job_id: str
    attempt: int
    worker: str
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    # Taken over a revoked claim: a worker presumed dead may still come back with its
    # outcome, so this claim outlives the attempt (REVOKED_TTL) instead of going with it.
    after_revoked: bool = field(default=False, compare=False)

    @property
    def key(self) -> str:
        return CLAIM_KEY.format(self.job_id)

    @property
    def value(self) -> str:
        return f"{self.attempt} {self.worker} {self.token}"


class ClaimLost(Exception):
    """The claim is no longer this execution's: its outcome must not be written."""

    def __init__(self, claim: Claim, holder: str | None) -> None:
        super().__init__(f"job {claim.job_id}: the claim of attempt {claim.attempt} is now {holder!r}")
        self.claim, self.holder = claim, holder


def claim_ttl(timeout: Any) -> int:
    """Longer than the job may run, so that a live claim never expires under its worker."""
    seconds = int(timeout) if isinstance(timeout, int | float) and timeout > 0 else NO_TIMEOUT_TTL
    return seconds + 2 * int(setting("WORKER_ALIVE_TTL")) + 60


# Taken unless: a later attempt holds the job; another live execution holds this attempt;
# or this very claim (or every claim of this worker on this attempt: "*") was revoked, as
# when the take itself reaches Redis late. A live claim of this same worker on this attempt
# is its own earlier execution's, over by now (a worker runs one attempt at a time): say a
# horse killed before it started the job, which went back to its queue and came back to
# this worker. It is taken over, and the claim is kept after the attempt as one taken over
# a revoked claim is (returns 1). Refusing it left that job `started` for good (seen in the
# chaos test under load: the worker ran the job, then dropped its own outcome).
_TAKE = """
local cur = redis.call('get', KEYS[1])
local own_stale = false
if cur then
  local held = tonumber(string.match(cur, '^(%d+) '))
  local mine = tonumber(ARGV[2])
  if held and held > mine then return cur end
  local revoked = string.sub(cur, -8) == ' revoked'
  local prefix = string.match(ARGV[1], '^(.* )')
  own_stale = held == mine and not revoked and cur ~= ARGV[1] and string.sub(cur, 1, string.len(prefix)) == prefix
  if held == mine and not revoked and cur ~= ARGV[1] and not own_stale then return cur end
  if cur == ARGV[1] .. ' revoked' or cur == ARGV[4] then return cur end
end
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[3])
if cur and (own_stale or string.sub(cur, -8) == ' revoked') then return 1 end
return 0
"""

# Revokes the live claim of ``attempt`` by ``worker`` (prefix "<attempt> <worker> "); no
# claim at all: every claim of that worker on that attempt. A newer claim is left alone.
_REVOKE = """
local cur = redis.call('get', KEYS[1])
if not cur then
  redis.call('set', KEYS[1], ARGV[1] .. '*' .. ARGV[3], 'EX', ARGV[2])
  return 1
end
if string.sub(cur, 1, string.len(ARGV[1])) == ARGV[1] and string.sub(cur, -8) ~= ARGV[3] then
  redis.call('set', KEYS[1], cur .. ARGV[3], 'EX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def claim_take(connection: Redis, claim: Claim, *, timeout: Any) -> tuple[Claim, str | None]:
    """Take the claim for this execution; returns it (marked when it follows a revoked one)
    and, when it was not taken, the holder that kept it."""
    taken = connection.eval(_TAKE, 1, claim.key, claim.value, claim.attempt, claim_ttl(timeout), _all_revoked(claim))
    if isinstance(taken, bytes):
        return claim, taken.decode(errors="replace")
    return (replace(claim, after_revoked=True) if taken == 1 else claim), None


def claim_revoke(pipeline: Any, job_id: str, *, attempt: int, worker: str) -> None:
    """Take the claim of ``attempt`` away from ``worker`` (in the caller's transaction)."""
    pipeline.eval(_REVOKE, 1, CLAIM_KEY.format(job_id), f"{attempt} {worker} ", REVOKED_TTL, REVOKED)


def claim_holder(connection: Redis, claim: Claim) -> str | None:
    """Who holds the job's claim now, when it is not ``claim`` (None: it is, or nobody)."""
    current = connection.get(claim.key)
    if current is None or current.decode(errors="replace") == claim.value:  # type: ignore[union-attr]
        return None
    return current.decode(errors="replace")  # type: ignore[union-attr]


def claim_release(connection: Redis, claim: Claim) -> None:
    connection.eval(_RELEASE, 1, claim.key, claim.value)


def _all_revoked(claim: Claim) -> str:
    return f"{claim.attempt} {claim.worker} *{REVOKED}"


class FencedRedis(Redis):
    """A client on the same connections whose transactions are sent only while ``claim``
    holds, and release it when they are. ``lost`` says whether one was held back."""

    def __init__(self, base: Redis, claim: Claim) -> None:
        super().__init__(connection_pool=base.connection_pool)
        self.claim = claim
        self.lost: ClaimLost | None = None

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        if not transaction:
            return super().pipeline(transaction, shard_hint)
        return _FencedPipeline(self, self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _FencedPipeline(Pipeline):
    def __init__(self, owner: FencedRedis, *args: Any) -> None:
        super().__init__(*args)
        self._owner = owner
        self._checked = False

    def _check(self) -> None:
        """WATCH the claim and read it: from here the transaction fails if it changes."""
        if self._checked:
            return
        claim = self._owner.claim
        self.watch(claim.key)
        current = self.get(claim.key)  # immediate while watching
        if current is not None and current.decode(errors="replace") != claim.value:
            self.reset()
            self._owner.lost = ClaimLost(claim, current.decode(errors="replace"))
            raise self._owner.lost
        self._checked = True

    def multi(self) -> None:
        self._check()
        super().multi()

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.command_stack and (self.explicit_transaction or self.transaction):
            if not self.explicit_transaction:
                self._check()
            # The attempt ends with this write: the claim goes with it, unless a worker
            # presumed dead may still come back with an older attempt's outcome.
            claim = self._owner.claim
            if claim.after_revoked:
                self.pipeline_execute_command("EXPIRE", claim.key, REVOKED_TTL)
            else:
                self.pipeline_execute_command("DEL", claim.key)
        return super().execute(raise_on_error)

    def reset(self) -> None:
        super().reset()
        self._checked = False
