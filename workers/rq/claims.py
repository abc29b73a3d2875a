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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError

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
    return claim_taken(claim, claim_take_queued(connection, claim, timeout=timeout))


def claim_take_queued(connection: Any, claim: Claim, *, timeout: Any) -> Any:
    """The take as one command of ``connection``, which may be a transaction (a worker takes
    the claim in the one that registers the execution): its reply goes to ``claim_taken``."""
    return connection.eval(_TAKE, 1, claim.key, claim.value, claim.attempt, claim_ttl(timeout), _all_revoked(claim))


def claim_taken(claim: Claim, taken: Any) -> tuple[Claim, str | None]:
    """``claim_take``'s answer from the take's reply."""
    if isinstance(taken, bytes):
        return claim, taken.decode(errors="replace")
    return (replace(claim, after_revoked=True) if taken == 1 else claim), None


def claim_take_over_dead(
    connection: Redis, claim: Claim, holder: str, *, timeout: Any, alive: Callable[[str], bool]
) -> tuple[Claim, str | None]:
    """After a refused take: when ``holder`` is another worker's live claim on this same
    attempt and that worker is dead (``alive`` says no), revoke it and take the claim, as a
    watchdog that declared it dead would have. The job came back to a queue without such a
    revoke (say RQ put it back from a dead worker's intermediate list): refused, this worker
    would run it and drop its own outcome, and the record would say `started` for good.
    Returns what ``claim_take`` does; a live holder's claim is left alone (still refused)."""
    if holder.endswith(REVOKED):
        return claim, holder
    attempt, _, rest = holder.partition(" ")
    worker = rest.rpartition(" ")[0]
    if attempt != str(claim.attempt) or not worker or worker == claim.worker or alive(worker):
        return claim, holder
    with connection.pipeline() as pipeline:
        claim_revoke(pipeline, claim.job_id, attempt=claim.attempt, worker=worker)
        claim_take_queued(pipeline, claim, timeout=timeout)
        taken = pipeline.execute()[-1]
    return claim_taken(claim, taken)


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
    holds, and release it when they are. ``lost`` says whether one was held back.

    Each transaction checks the claim after WATCHing it, in the round trip of its first
    WATCH (``_FencedPipeline``): RQ's success transaction WATCHes the job's dependents
    anyway, so the check costs it nothing; a transaction without a WATCH of its own pays one
    round trip. ``arm`` makes that check ahead, before any of RQ's code runs (a claim already
    lost writes nothing and logs nothing), and hands the armed pipeline to the first
    transaction asked for."""

    def __init__(self, base: Redis, claim: Claim) -> None:
        super().__init__(connection_pool=base.connection_pool)
        self.claim = claim
        self.lost: ClaimLost | None = None
        self._armed: _FencedPipeline | None = None

    def arm(self) -> str | None:
        """WATCH and read the claim now: the holder when it is someone else's (nothing may
        be written), else None, the next transaction's check already made."""
        pipeline = _FencedPipeline(self, self.connection_pool, self.response_callbacks, True, None)
        try:
            pipeline.check()
        except ClaimLost as lost:
            self.lost = None  # nothing was held back: the caller drops the outcome itself
            return lost.holder
        self._armed = pipeline
        return None

    def disarm(self) -> None:
        """Give back an armed pipeline no transaction asked for."""
        if self._armed is not None:
            self._armed.reset()
            self._armed = None

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        if not transaction:
            return super().pipeline(transaction, shard_hint)
        if self._armed is not None:
            armed, self._armed = self._armed, None
            armed.implicit = True
            return armed
        return _FencedPipeline(self, self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _FencedPipeline(Pipeline):
    def __init__(self, owner: FencedRedis, *args: Any) -> None:
        super().__init__(*args)
        self._owner = owner
        self._checked = False
        # Armed ahead (FencedRedis.arm), the pipeline already WATCHes: redis-py would send
        # each command at once, outside the transaction. Until its user WATCHes something
        # itself, its commands are queued for the transaction as they would be unarmed.
        self.implicit = False

    def check(self, *also_watched: Any) -> None:
        """WATCH the claim (and ``also_watched``) and read it, in one round trip: from here
        the transaction fails if the claim changes; ClaimLost if it is not ours already."""
        if self._checked:
            if also_watched:
                super().watch(*also_watched)
            return
        claim = self._owner.claim
        current = self._watch_and_read(claim.key, *also_watched)
        if current is not None and current.decode(errors="replace") != claim.value:
            self.reset()
            self._owner.lost = ClaimLost(claim, current.decode(errors="replace"))
            raise self._owner.lost
        self._checked = True

    def _watch_and_read(self, key: str, *also_watched: Any) -> bytes | None:
        """WATCH ``key`` and ``also_watched``, then GET ``key``, sent together (redis-py sends
        each command of a watching pipeline on its own). A connection that fails is retried
        as redis-py retries a WATCH, unless it was already watching: those WATCHes went
        with it (WatchError, as redis-py says then)."""
        connection: Any = getattr(self, "connection", None) or self.connection_pool.get_connection()
        self.connection = connection
        watching = bool(getattr(self, "watching", False))

        def send() -> Any:
            connection.send_packed_command(connection.pack_commands([("WATCH", *also_watched, key), ("GET", key)]))
            connection.read_response()
            return connection.read_response()

        def failed(error: Exception) -> None:
            connection.disconnect()  # its WATCH goes with it; an answer may be left unread
            if watching:
                raise WatchError(f"A {type(error).__name__} occurred while watching one or more keys")

        try:
            current = connection.retry.call_with_retry(send, failed)
        except BaseException:
            connection.disconnect()
            self.reset()
            raise
        self.watching = True
        return current  # type: ignore[no-any-return]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.implicit and args[0] != "WATCH":
            return self.pipeline_execute_command(*args, **options)
        return super().execute_command(*args, **options)

    def watch(self, *names: Any) -> bool:
        # RQ's success transaction WATCHes the job's dependents: the claim rides along.
        self.implicit = False  # its user reads what it watches, then calls MULTI
        self.check(*names)
        return True

    def multi(self) -> None:
        self.check()
        super().multi()

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.command_stack and (self.explicit_transaction or self.transaction):
            if not self.explicit_transaction:
                self.check()
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
        self._checked = self.implicit = False
