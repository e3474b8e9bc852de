"""The ticket stream: producers XADD tickets; a consumer group micro-batches, stores and acks them.

Entries are acknowledged only after their tickets are upserted, so a consumer killed mid-batch
leaves them pending; a live consumer claims entries idle longer than ``claim_idle_ms``
(XAUTOCLAIM) and processes them again (an upsert by ticket id is idempotent, so a replay stores each
ticket once). A consumer re-claims the batch it is working on as it goes, so only a dead consumer's
entries go idle. An entry that cannot be parsed, or whose batch failed ``max_deliveries`` times, goes to
the dead-letter stream with the reason; that stream keeps the newest ``dead_letter_max_len`` and
the stats hash counts them all.

Redis holds the backlog, not the history: after each ack the stream is trimmed below the oldest
entry some group still needs (pending, or not yet delivered), see :func:`trim_acknowledged`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis

from constellate.datasets import FieldMap, ticket_from_row
from constellate.embedding import Embedder
from constellate.ingest import Labeller, ingest_tickets
from constellate.store.base import VectorStore
from constellate.tickets import Ticket

log = logging.getLogger(__name__)

STREAM_KEY = "constellate:tickets"
STATS_KEY = "constellate:ingest:stats"
DEAD_KEY = "constellate:tickets:dead"
GROUP = "ingestion"


def publish(client: Any, tickets: Sequence[Ticket], stream: str = STREAM_KEY) -> list[str]:
    """Append tickets to the stream (one entry each, in one round trip); returns the entry ids."""
    pipe = client.pipeline(transaction=False)
    for ticket in tickets:
        row = {k: v for k, v in asdict(ticket).items() if k != "version"}  # the entry id is its version
        pipe.xadd(stream, {"ticket": json.dumps(row, ensure_ascii=False)})
    return [i.decode() if isinstance(i, bytes) else str(i) for i in pipe.execute()]


def _groups(client: Any, stream: str) -> list[dict[str, Any]]:
    """XINFO GROUPS of ``stream``; none when the stream does not exist yet (other errors raise)."""
    try:
        return list(client.xinfo_groups(stream))
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return []
        raise


def stream_lag(client: Any, stream: str = STREAM_KEY, group: str = GROUP) -> dict[str, int]:
    """Entries in the stream, not yet delivered to the group, and delivered but unacknowledged."""
    length = int(client.xlen(stream))
    pending = undelivered = 0
    for info in _groups(client, stream):
        if _text(info.get("name")) == group:
            pending = int(info.get("pending") or 0)
            undelivered = int(info.get("lag") or 0)
    return {
        "length": length,
        "undelivered": undelivered,
        "pending": pending,
        "dead": int(client.xlen(DEAD_KEY)),
    }


# Removes, in one step, the group's consumers that hold no pending entry and have been idle longer
# than ARGV[2] ms: checked and removed atomically, so a consumer that reads entries in between keeps
# them (XGROUP DELCONSUMER drops a consumer's pending entries with it).
_FORGET_IDLE = """
local gone = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if tonumber(info['pending']) == 0 and tonumber(info['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    table.insert(gone, info['name'])
  end
end
return gone
"""
FORGET_IDLE_MS = 24 * 3600 * 1000  # a day: every start of the service names a new consumer


def forget_idle_consumers(
    client: Any, idle_ms: int = FORGET_IDLE_MS, stream: str = STREAM_KEY, group: str = GROUP
) -> list[str]:
    """Remove the consumers that hold nothing and were quiet for ``idle_ms`` (old names of restarted
    services); a dead consumer's pending entries keep it until they are claimed. Returns the names."""
    try:
        gone = client.eval(_FORGET_IDLE, 1, stream, group, idle_ms)
    except redis.ResponseError as exc:  # housekeeping: a server refusing scripts must not stop ingestion
        if "NOGROUP" not in str(exc) and "no such key" not in str(exc):
            log.warning("could not forget idle consumers (%s); the group keeps their names", exc)
        return []
    return sorted(_text(name) for name in gone)


def trim_acknowledged(client: Any, stream: str = STREAM_KEY) -> int:
    """Delete the entries every consumer group has acknowledged; returns how many went.

    The stream is trimmed (exact ``XTRIM MINID``) to the oldest entry any group still needs: its
    oldest pending entry, or else the first after its last-delivered id. Concurrent readers only
    move both marks forward (a delivery takes entries above the last-delivered id, an ack or a claim
    never makes an older entry pending), so a mark read here stays safe until the trim runs. A
    stream without groups is left alone: nothing has read it yet.
    """
    marks = []
    for info in _groups(client, stream):
        mark = _next_id(_parse_id(info["last-delivered-id"]))
        if int(info.get("pending") or 0):
            oldest = client.xpending(stream, info["name"]).get("min")
            if oldest is not None:
                mark = min(mark, _parse_id(oldest))
        marks.append(mark)
    if not marks:
        return 0
    ms, seq = min(marks)
    return int(client.xtrim(stream, minid=f"{ms}-{seq}", approximate=False))


def _parse_id(entry_id: Any) -> tuple[int, int]:
    ms, _, seq = _text(entry_id).partition("-")
    return int(ms), int(seq or 0)


def entry_version(entry_id: Any) -> int:
    """The ticket version of a stream entry: its id as one number (milliseconds x 1024 + the
    sequence, capped: exact in a float64, the engines' range type), later entries larger."""
    ms, seq = _parse_id(entry_id)
    return ms * 1024 + min(seq, 1023)


def _next_id(entry_id: tuple[int, int]) -> tuple[int, int]:
    ms, seq = entry_id
    return (ms, seq + 1) if seq < 2**64 - 1 else (ms + 1, 0)


@dataclass(frozen=True)
class ConsumerConfig:
    """Batch size, wait, and redelivery policy."""

    batch_size: int = 4096
    block_ms: int = 500
    claim_idle_ms: int = 60_000
    max_deliveries: int = 5
    max_text_chars: int = 10_000
    dead_letter_max_len: int = 1000


class StreamConsumer:
    """One member of the ingestion consumer group."""

    def __init__(
        self,
        client: Any,
        store: VectorStore,
        embedder: Embedder,
        labeller: Labeller | None = None,
        name: str = "ingestion-1",
        config: ConsumerConfig | None = None,
        stream: str = STREAM_KEY,
    ) -> None:
        self.client = client
        self.store = store
        self.embedder = embedder
        self.labeller = labeller
        self.name = name
        self.config = config or ConsumerConfig()
        self.stream = stream
        self.stored = 0
        self.dead = 0
        self._claim_from = "0-0"  # XAUTOCLAIM cursor: each call scans the next part of the PEL

    def ensure_group(self) -> None:
        """Create the stream and the group if missing (reading from the start of the stream), and
        forget the group's consumers quiet for a day with nothing pending."""
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        forgotten = forget_idle_consumers(self.client, stream=self.stream)
        if forgotten:
            log.info("forgot %d idle consumers of the ingestion group: %s", len(forgotten), forgotten[:10])

    def poll(self) -> int:
        """Process stale pending entries, then one batch of new ones; returns entries handled."""
        handled = 0
        claimed = self.client.xautoclaim(
            self.stream,
            GROUP,
            self.name,
            min_idle_time=self.config.claim_idle_ms,
            start_id=self._claim_from,
            count=self.config.batch_size,
        )
        self._claim_from = _text(claimed[0])  # "0-0" again once the scan has wrapped around
        stale = [e for e in claimed[1] if e and e[1] is not None]
        if stale:
            handled += self._process(stale, redelivered=True)
        entries = self._read_new()
        if entries:
            handled += self._process(entries, redelivered=False)
        return handled

    def _read_new(self) -> list[Any]:
        """Up to ``batch_size`` new entries: wait up to ``block_ms`` for the first, then keep taking
        what is queued without waiting (a producer's pipeline is still arriving when the first wakes
        us), so under load a batch is full and the encoder gets many texts to sort by length."""
        entries: list[Any] = []
        block: int | None = self.config.block_ms
        while len(entries) < self.config.batch_size:
            response = self.client.xreadgroup(
                GROUP,
                self.name,
                {self.stream: ">"},
                count=self.config.batch_size - len(entries),
                block=block,
            )
            got = [entry for _stream, batch in response or [] for entry in batch]
            if not got:
                break
            entries.extend(got)
            block = None
        return entries

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; reconnect with backoff while Redis is unreachable."""
        backoff = 0.5
        while not stop.is_set():
            try:
                self.ensure_group()
                while not stop.is_set():
                    self.poll()
                    backoff = 0.5
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("redis unreachable (%s); retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception:
                log.exception("ingestion batch failed; entries stay pending for redelivery")
                stop.wait(1.0)

    def _process(self, entries: list[Any], redelivered: bool) -> int:
        ids = [_text(entry_id) for entry_id, _ in entries]
        deliveries = self._deliveries(ids) if redelivered else {}
        tickets: dict[str, Ticket] = {}
        for entry_id, fields in entries:
            eid = _text(entry_id)
            if deliveries.get(eid, 0) > self.config.max_deliveries:
                self._dead(eid, fields, f"gave up after {deliveries[eid] - 1} failed deliveries")
                continue
            try:
                row = json.loads(_text(_field(fields)))
                if not isinstance(row, dict):
                    raise ValueError("entry is not a JSON object")
                ticket = replace(
                    ticket_from_row(row, FieldMap(), self.config.max_text_chars), version=entry_version(eid)
                )
            except (ValueError, TypeError) as exc:
                self._dead(eid, fields, f"bad entry: {exc}")
                continue
            tickets[ticket.id] = ticket  # the last write of an id in a batch wins
        if tickets:
            started = time.perf_counter()
            with self._kept_claimed(ids):
                ingest_tickets(list(tickets.values()), self.store, self.embedder, labeller=self.labeller)
            self.stored += len(tickets)
            pipe = self.client.pipeline(transaction=False)
            pipe.hincrby(STATS_KEY, "tickets", len(tickets))
            pipe.hincrby(STATS_KEY, "batches", 1)
            pipe.hincrbyfloat(STATS_KEY, "batch_seconds", time.perf_counter() - started)
            pipe.execute()
        if ids:
            self.client.xack(self.stream, GROUP, *ids)
            trim_acknowledged(self.client, self.stream)
        return len(ids)

    @contextlib.contextmanager
    def _kept_claimed(self, ids: list[str]) -> Iterator[None]:
        """While the batch is processed, re-claim its entries for this consumer every third of
        ``claim_idle_ms`` (XCLAIM JUSTID: their idle time restarts, their delivery count does not
        grow), so that a slow batch (long texts take the encoder minutes) is not taken over by
        another live consumer; a dead consumer's entries still go idle and are claimed."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(max(self.config.claim_idle_ms / 3000, 0.01)):
                try:
                    self.client.xclaim(self.stream, GROUP, self.name, 0, ids, justid=True)
                except redis.RedisError as exc:  # the batch goes on; at worst it is processed twice
                    log.warning("could not keep the batch claimed: %s", exc)

        thread = threading.Thread(target=beat, name="ingestion-claim", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _deliveries(self, ids: list[str]) -> dict[str, int]:
        """How many times each of these pending entries has been delivered (one XPENDING per id)."""
        pipe = self.client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xpending_range(self.stream, GROUP, min=entry_id, max=entry_id, count=1)
        return {_text(p["message_id"]): int(p["times_delivered"]) for rows in pipe.execute() for p in rows}

    def _dead(self, entry_id: str, fields: Any, reason: str) -> None:
        payload = _text(_field(fields)) if fields else ""
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(
            DEAD_KEY,
            {"entry": entry_id, "reason": reason, "ticket": payload[:100_000]},
            maxlen=self.config.dead_letter_max_len,
            approximate=False,
        )
        pipe.hincrby(STATS_KEY, "dead", 1)
        pipe.execute()
        self.dead += 1
        log.warning("dead-lettered %s: %s", entry_id, reason)


def _field(fields: Any) -> Any:
    return fields.get(b"ticket", fields.get("ticket", b"")) if isinstance(fields, dict) else b""


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def wait_until_drained(client: Any, timeout: float, stream: str = STREAM_KEY) -> bool:
    """Block until the group has read and acknowledged everything (or ``timeout`` seconds pass)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lag = stream_lag(client, stream)
        if lag["undelivered"] == 0 and lag["pending"] == 0:
            return True
        time.sleep(0.1)
    return False
