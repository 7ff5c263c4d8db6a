"""A crawl frontier shared by many workers through Redis, safe against SIGKILL at any moment.

Everything lives under one key prefix per crawl (``{prefix}:queue`` ...; the braces make it one
Redis Cluster hash slot):

* ``queue``: sorted set of request ids, scored by priority then arrival (FIFO within a priority);
* ``req``: hash id → the request as JSON (``Request.to_dict()`` made JSON-safe: no pickle);
* ``seen``: set of request fingerprints, the shared dupefilter;
* ``inflight``: hash id → ``"<worker token> <queue score>"``, the requests a worker holds;
* ``leases``: sorted set worker token → lease deadline in milliseconds of Redis ``TIME`` (one
  clock for every machine). A worker renews its lease while it lives; once the deadline passes,
  the next script run by anyone puts that worker's requests back in the queue;
* ``records``: hash url → the output record as JSON, written only by an acknowledgement;
* ``meta``: hash of the crawl's state (``running`` / ``done``), configuration hash and counters.

Every change is one Lua script, so it is atomic. The acknowledgement of a request stores its
records and pushes its children (deduplicated) only if the worker still holds the request: a
request re-queued from a worker presumed dead and fetched again is recorded once. When the
queue and the in-flight set are both empty, one worker claims the export (with a lease of its
own, so a worker dying mid-export is replaced) and writes the records, sorted by URL, to the
stage's JSON Lines output with an atomic rename.

All methods block on the network: call them from a thread (see :mod:`common.redis.pump`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from common.errors import FrontierConfigError
from common.io.atomic import atomic_write_bytes, ensure_private_dir
from common.outputs import failed_sidecar_path, refuse_replacing
from common.stores.factory import detect_store, open_store

__all__ = [
    "Ack",
    "CommitResult",
    "FrontierConfigError",
    "LeaseResult",
    "NewRequest",
    "RedisFrontier",
    "default_output",
    "export_records",
    "refuse_a_local_stage_file",
    "safe_url",
]

logger = logging.getLogger("common.redis")

# Scores are priority * 2**32 + arrival; a double holds that exactly for |priority| < 2**20.
MAX_PRIORITY = 2**20 - 1

_KEYS = ("queue", "req", "seen", "inflight", "leases", "records", "meta")

_PRELUDE = """
local K_QUEUE, K_REQ, K_SEEN, K_INFLIGHT, K_LEASES, K_RECORDS, K_META =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

-- Numbers passed to redis.call are formatted with 14 digits: format big ones ourselves.
local function ms(value)
    return string.format('%.0f', value)
end

local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- fp '' is a request that bypasses the dupefilter (dont_filter).
local function push(fp, body, priority)
    if fp ~= '' and redis.call('SADD', K_SEEN, fp) == 0 then
        return 0
    end
    local seq = redis.call('HINCRBY', K_META, 'scheduled', 1)
    redis.call('ZADD', K_QUEUE, string.format('%.0f', -priority * 4294967296 + seq), seq)
    redis.call('HSET', K_REQ, seq, body)
    return 1
end

-- Put the requests of every worker whose lease expired back in the queue.
local function reap(now)
    local expired = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', '(' .. ms(now))
    if #expired == 0 then
        return 0
    end
    local dead = {}
    for _, token in ipairs(expired) do
        dead[token] = true
    end
    local held = redis.call('HGETALL', K_INFLIGHT)
    local n = 0
    for i = 1, #held, 2 do
        local value = held[i + 1]
        local space = string.find(value, ' ', 1, true)
        if dead[string.sub(value, 1, space - 1)] then
            redis.call('ZADD', K_QUEUE, string.sub(value, space + 1), held[i])
            redis.call('HDEL', K_INFLIGHT, held[i])
            n = n + 1
        end
    end
    redis.call('ZREMRANGEBYSCORE', K_LEASES, '-inf', '(' .. ms(now))
    if n > 0 then
        redis.call('HINCRBY', K_META, 'requeued', n)
    end
    return n
end
"""

# ARGV: token, lease_ms, config hash, force ('1'/'0'). Returns {status, detail}.
_REGISTER = """
local now = now_ms()
local config = redis.call('HGET', K_META, 'config')
if config and config ~= ARGV[3] and ARGV[4] ~= '1' then
    return {'config', config}
end
if not config or config ~= ARGV[3] then
    redis.call('HSET', K_META, 'config', ARGV[3])
end
if not redis.call('HGET', K_META, 'state') then
    redis.call('HSET', K_META, 'state', 'running', 'created_ms', ms(now))
end
redis.call('ZADD', K_LEASES, ms(now + tonumber(ARGV[2])), ARGV[1])
return {'ok', redis.call('HGET', K_META, 'state')}
"""

# ARGV: token, lease_ms, n. Renews the lease and takes up to n requests.
# Returns {lost (0/1), queued, in flight, state, {id, body, id, body, ...}, done, scheduled,
# records, live workers}.
_LEASE = """
local token, now = ARGV[1], now_ms()
reap(now)
local lost = 0
if not redis.call('ZSCORE', K_LEASES, token) then
    lost = 1
end
redis.call('ZADD', K_LEASES, ms(now + tonumber(ARGV[2])), token)
local state = redis.call('HGET', K_META, 'state') or ''
local out = {}
local n = tonumber(ARGV[3])
if state ~= 'done' and n > 0 then
    local popped = redis.call('ZPOPMIN', K_QUEUE, n)
    for i = 1, #popped, 2 do
        local id = popped[i]
        redis.call('HSET', K_INFLIGHT, id, token .. ' ' .. popped[i + 1])
        out[#out + 1] = id
        out[#out + 1] = redis.call('HGET', K_REQ, id) or ''
    end
end
return {lost, redis.call('ZCARD', K_QUEUE), redis.call('HLEN', K_INFLIGHT), state, out,
        tonumber(redis.call('HGET', K_META, 'done') or '0'),
        tonumber(redis.call('HGET', K_META, 'scheduled') or '0'),
        redis.call('HLEN', K_RECORDS), redis.call('ZCARD', K_LEASES)}
"""

# ARGV: token, batch JSON {"p": [[fp, body, priority]...], "a": [[id, [[url, record]...],
# [[fp, body, priority]...]]...]}. Pushes first, then acknowledgements, in the order given.
# Returns {pushed, acked, refused, duplicate records}.
_COMMIT = """
local token = ARGV[1]
local prefix = token .. ' '
local batch = cjson.decode(ARGV[2])
local pushed, acked, refused, duplicates = 0, 0, 0, 0
if redis.call('HGET', K_META, 'state') == 'done' then
    return {0, 0, #batch.a, 0}
end
for _, p in ipairs(batch.p) do
    pushed = pushed + push(p[1], p[2], p[3])
end
for _, a in ipairs(batch.a) do
    local id = a[1]
    local held = redis.call('HGET', K_INFLIGHT, id)
    if held and string.sub(held, 1, #prefix) == prefix then
        redis.call('HDEL', K_INFLIGHT, id)
        redis.call('HDEL', K_REQ, id)
        for _, r in ipairs(a[2]) do
            if redis.call('HSETNX', K_RECORDS, r[1], r[2]) == 0 then
                duplicates = duplicates + 1
            end
        end
        for _, c in ipairs(a[3]) do
            pushed = pushed + push(c[1], c[2], c[3])
        end
        acked = acked + 1
    else
        refused = refused + 1
    end
end
if acked > 0 then
    redis.call('HINCRBY', K_META, 'done', acked)
end
return {pushed, acked, refused, duplicates}
"""

# ARGV: token, ids... Hands requests back (a clean stop): queued again at once.
_RELEASE = """
local prefix = ARGV[1] .. ' '
local n = 0
for i = 2, #ARGV do
    local held = redis.call('HGET', K_INFLIGHT, ARGV[i])
    if held and string.sub(held, 1, #prefix) == prefix then
        redis.call('ZADD', K_QUEUE, string.sub(held, #prefix + 1), ARGV[i])
        redis.call('HDEL', K_INFLIGHT, ARGV[i])
        n = n + 1
    end
end
return n
"""

# ARGV: token. The worker leaves: everything it still holds is queued again, its lease dropped.
_LEAVE = """
local prefix = ARGV[1] .. ' '
local held = redis.call('HGETALL', K_INFLIGHT)
local n = 0
for i = 1, #held, 2 do
    if string.sub(held[i + 1], 1, #prefix) == prefix then
        redis.call('ZADD', K_QUEUE, string.sub(held[i + 1], #prefix + 1), held[i])
        redis.call('HDEL', K_INFLIGHT, held[i])
        n = n + 1
    end
end
redis.call('ZREM', K_LEASES, ARGV[1])
return n
"""

# ARGV: token, lease_ms. Returns 'done', 'busy' (work left), 'exporting' (someone else) or
# 'export' (this worker now holds the export lease).
_CLAIM_EXPORT = """
local token, now = ARGV[1], now_ms()
reap(now)
redis.call('ZADD', K_LEASES, ms(now + tonumber(ARGV[2])), token)
if redis.call('HGET', K_META, 'state') == 'done' then
    return 'done'
end
if redis.call('ZCARD', K_QUEUE) > 0 or redis.call('HLEN', K_INFLIGHT) > 0 then
    return 'busy'
end
local owner = redis.call('HGET', K_META, 'export_owner')
local deadline = tonumber(redis.call('HGET', K_META, 'export_deadline') or '0')
if owner and owner ~= token and deadline > now then
    return 'exporting'
end
redis.call('HSET', K_META, 'export_owner', token, 'export_deadline', ms(now + tonumber(ARGV[2])))
return 'export'
"""

# ARGV: token, where. Marks the crawl done if this worker holds the export lease.
_FINISH_EXPORT = """
if redis.call('HGET', K_META, 'export_owner') ~= ARGV[1] then
    return 0
end
redis.call('HSET', K_META, 'state', 'done', 'exported_to', ARGV[2], 'done_ms', ms(now_ms()))
return 1
"""


@dataclass(frozen=True)
class NewRequest:
    """A request to push: its fingerprint (``""``: not deduplicated), JSON body and priority."""

    fingerprint: str
    body: str
    priority: int = 0

    def encode(self) -> list[Any]:
        priority = max(-MAX_PRIORITY, min(MAX_PRIORITY, int(self.priority)))
        return [self.fingerprint, self.body, priority]


@dataclass
class Ack:
    """A finished request: its records ``(url, record JSON)`` and the children it found."""

    request_id: str
    records: list[tuple[str, str]] = field(default_factory=list)
    children: list[NewRequest] = field(default_factory=list)


@dataclass(frozen=True)
class LeaseResult:
    """What :meth:`RedisFrontier.lease` took, and the frontier as it saw it."""

    requests: list[tuple[str, str]]
    queued: int
    in_flight: int
    state: str
    lost: bool
    done: int = 0
    scheduled: int = 0
    records: int = 0
    workers: int = 0

    @property
    def finished(self) -> bool:
        """True when no request is queued or held by anyone."""
        return self.queued == 0 and self.in_flight == 0


@dataclass(frozen=True)
class CommitResult:
    pushed: int
    acked: int
    refused: int
    duplicates: int


class RedisFrontier:
    """One crawl's shared frontier under ``prefix`` on the Redis server at ``url``."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        lease_seconds: float = 30.0,
        client: redis.Redis | None = None,
    ) -> None:
        if not prefix or any(c.isspace() for c in prefix) or "{" in prefix or "}" in prefix:
            raise ValueError(
                f"CHECKPOINT_REDIS_PREFIX must be a non-empty name without spaces or braces: "
                f"{prefix!r}"
            )
        if lease_seconds <= 0:
            raise ValueError(f"the lease must be positive: {lease_seconds!r} seconds")
        self.url = url
        self.prefix = prefix
        self.lease_ms = max(1, round(lease_seconds * 1000))
        self.client: redis.Redis = client or redis.Redis.from_url(url)
        self.keys = [f"{{{prefix}}}:{name}" for name in _KEYS]
        self._scripts = {
            name: self.client.register_script(_PRELUDE + body)
            for name, body in (
                ("register", _REGISTER),
                ("lease", _LEASE),
                ("commit", _COMMIT),
                ("release", _RELEASE),
                ("leave", _LEAVE),
                ("claim", _CLAIM_EXPORT),
                ("finish", _FINISH_EXPORT),
            )
        }

    def key(self, name: str) -> str:
        """The full Redis key of one of the frontier's structures (``queue``, ``records`` ...)."""
        return self.keys[_KEYS.index(name)]

    def _run(self, name: str, *args: Any) -> Any:
        return self._scripts[name](keys=self.keys, args=list(args))

    # Workers -------------------------------------------------------------------------------------

    def register(self, token: str, config_hash: str, *, force: bool = False) -> str:
        """Join the crawl as ``token``; returns its state (``running`` or ``done``).

        Raises :class:`FrontierConfigError` if the crawl was started with another configuration
        (unless ``force``).
        """
        status, detail = self._run("register", token, self.lease_ms, config_hash, int(force))
        status, detail = _text(status), _text(detail)
        if status == "config":
            raise FrontierConfigError(
                f"Redis crawl {self.prefix!r} at {safe_url(self.url)} was started with another "
                f"configuration ({detail}, now {config_hash}); use another "
                f"CHECKPOINT_REDIS_PREFIX, CHECKPOINT_FRESH to start it over, or "
                f"CHECKPOINT_FORCE to continue it"
            )
        return detail

    def lease(self, token: str, count: int) -> LeaseResult:
        """Renew ``token``'s lease and take up to ``count`` requests (``count=0``: heartbeat)."""
        lost, queued, in_flight, state, flat, done, scheduled, records, workers = self._run(
            "lease", token, self.lease_ms, count
        )
        pairs = [(_text(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]
        return LeaseResult(
            pairs,
            int(queued),
            int(in_flight),
            _text(state),
            bool(lost),
            int(done),
            int(scheduled),
            int(records),
            int(workers),
        )

    def commit(
        self, token: str, pushes: Sequence[NewRequest] = (), acks: Sequence[Ack] = ()
    ) -> CommitResult:
        """Push new requests, then acknowledge finished ones, in one atomic step."""
        batch = {
            "p": [p.encode() for p in pushes],
            "a": [
                [a.request_id, [list(r) for r in a.records], [c.encode() for c in a.children]]
                for a in acks
            ],
        }
        # An empty JSON array decodes to an empty Lua table: no special case needed.
        pushed, acked, refused, duplicates = self._run(
            "commit", token, json.dumps(batch, separators=(",", ":"))
        )
        return CommitResult(int(pushed), int(acked), int(refused), int(duplicates))

    def push(self, token: str, requests: Iterable[NewRequest]) -> int:
        """Push requests (deduplicated by fingerprint); returns how many were new."""
        return self.commit(token, list(requests)).pushed

    def release(self, token: str, request_ids: Sequence[str]) -> int:
        """Hand requests back to the queue at once (a clean stop), if ``token`` holds them."""
        if not request_ids:
            return 0
        return int(self._run("release", token, *request_ids))

    def leave(self, token: str) -> int:
        """Give back everything ``token`` holds and drop its lease; returns requests re-queued."""
        return int(self._run("leave", token))

    # The end -------------------------------------------------------------------------------------

    def claim_export(self, token: str) -> str:
        """``done``, ``busy``, ``exporting`` (another worker) or ``export`` (this one exports)."""
        return _text(self._run("claim", token, self.lease_ms))

    def finish_export(self, token: str, where: str) -> bool:
        """Mark the crawl done; False if ``token`` lost the export lease meanwhile."""
        return bool(self._run("finish", token, where))

    def iter_records(self, batch: int = 1000) -> Iterator[tuple[str, bytes]]:
        """Every ``(url, record JSON)`` stored, in no order."""
        for url, record in self.client.hscan_iter(self.key("records"), count=batch):
            yield _text(url), bytes(record)

    # Inspection ----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Counts and state of the crawl, as plain JSON-ready values."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self.key("meta"))
        pipe.zcard(self.key("queue"))
        pipe.hlen(self.key("inflight"))
        pipe.scard(self.key("seen"))
        pipe.hlen(self.key("records"))
        pipe.zcard(self.key("leases"))
        meta, queued, in_flight, seen, records, workers = pipe.execute()
        info: dict[str, Any] = {_text(k): _text(v) for k, v in meta.items()}
        for name in ("scheduled", "done", "requeued"):
            info[name] = int(info.get(name, 0))
        info.update(
            queued=int(queued),
            in_flight=int(in_flight),
            seen=int(seen),
            records=int(records),
            workers=int(workers),
        )
        info.setdefault("state", "new")
        return info

    def records_count(self) -> int:
        return int(self.client.hlen(self.key("records")))

    def delete(self) -> int:
        """Forget the crawl: delete every key under the prefix."""
        return int(self.client.delete(*self.keys))

    def close(self) -> None:
        self.client.close()


def export_records(
    frontier: RedisFrontier, output: Path | str, *, failed_output: Path | str | None = None
) -> tuple[int, int]:
    """Write the crawl's records to ``output``, sorted by URL, atomically; returns (records,
    failed records). A record with an ``error`` also goes to ``failed_output`` (default
    ``<output>.failed.jsonl``), like the local pipeline's sidecar."""
    output = Path(output)
    failed_path = Path(failed_output) if failed_output is not None else failed_sidecar_path(output)
    rows = sorted(frontier.iter_records())
    failed = [record for _url, record in rows if json.loads(record).get("error")]
    _replace(output, b"".join(record + b"\n" for _url, record in rows))
    _replace(failed_path, b"".join(record + b"\n" for record in failed))
    return len(rows), len(failed)


def default_output(stage_output: Path | str, prefix: str) -> Path:
    """Where a Redis crawl under ``prefix`` exports by default, for a spider whose local stage
    writes ``stage_output``: ``redis/<prefix>/<its file name>`` beside the stage's folder
    (``data/processed/redis/example-edu/discovery_output.jsonl`` for discovery's
    ``data/processed/stage01/discovery_output.jsonl``).

    Not the stage's own file: that holds the local stage's records (a crawl exporting over
    them is refused at its start), and crawls under two prefixes would replace each other's
    export. Characters other than letters, digits, ``.``, ``_`` and ``-`` in the prefix become
    ``_`` (a ``/`` makes no folders, ``..`` climbs none)."""
    stage_output = Path(stage_output)
    folder = re.sub(r"[^\w.-]", "_", prefix).lstrip(".") or "_"
    return stage_output.parent.parent / "redis" / folder / stage_output.name


def refuse_a_local_stage_file(
    frontier: RedisFrontier,
    output: Path | str,
    checkpoint_dir: Path | str,
    *,
    remedy: str = "choose another file (nothing was written)",
) -> None:
    """Refuse to export ``frontier``'s records to ``output`` when it (or its failed sidecar) is
    a file a stage of the local ``checkpoint_dir`` keeps: its output or sidecar, now or in its
    history, or a checkpoint file (:func:`common.outputs.refuse_replacing`, whose message ends
    with ``remedy``); and while another process writes it. Reads only.

    A Redis crawl keeps no local checkpoint, so no engine start guards the file it exports to:
    a worker asks this at its start, ``tools.redis_crawl export`` before writing. The file the
    crawl itself exported to on this machine (its meta's ``exported_to``) is its own, written
    again even where a local stage names it too.
    """
    exported_to = str(frontier.status().get("exported_to", ""))
    host, _, where = exported_to.partition(":")
    own = Path(where) if host == socket.gethostname() and where else None
    output = Path(output)
    directory = Path(checkpoint_dir)
    store = open_store(detect_store(directory), directory)
    try:
        refuse_replacing(store, output, failed_sidecar_path(output), own=own, remedy=remedy)
    finally:
        store.close()


def _replace(path: Path, data: bytes) -> None:
    ensure_private_dir(path.parent)
    atomic_write_bytes(path, data, temp_path=path.with_name(f".{path.name}.{os.getpid()}.tmp"))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()
    return url
