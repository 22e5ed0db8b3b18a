"""The outbox: compliance events kept on disk until the broker acknowledges them.

Each event is one row of an SQLite database in WAL mode, numbered by a sequence
that only grows and never repeats, across restarts too (``seq``, also put in
the published payload so a consumer can order events and see gaps). A row is
deleted only when the broker's PUBACK for it arrives, so an event survives a
lost connection, a restart and ``kill -9``. A number is used only once it is on
disk: a refused event's number is still recorded (a one-row update), and if
even that fails the event goes out with ``seq: null``.

The cost to the frame loop: ``add`` commits one transaction per event. With
``synchronous=FULL`` that is an fsync, so a stored event survives power loss
(``bench/outbox_cost.py``: about 0.25 ms median on an SSD, more on an SD card),
plus a checkpoint's fsync every ~50 pages; with ``NORMAL`` a commit survives a
crash but not a power cut. The sender deletes one batch (one commit) per lock,
so ``add`` waits behind one at most; another process holding the write lock is
waited for ``outbox_file.BUSY_TIMEOUT_S`` (twice), then the event is refused.

Past ``max_events`` or ``max_bytes``, and on a full disk (see ``outbox_file``),
the oldest events are dropped and counted in the database. An event that still
cannot be stored is handed to the broker without a copy if the connection is
up, and counted as dropped if not. No method raises: an SQLite error is counted
(``errors``), logged as a warning (the first, then once a minute) and answered
with the last known figure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.outbox_file import (
    DiskReserve,
    counter,
    is_full,
    open_database,
    record_seq,
    transaction,
)

log = logging.getLogger(__name__)

FULL_DISK_RETRIES = 3
REMOVE_BATCH = 32
LOG_INTERVAL_S = 60.0


class LogThrottle:
    """Lets a repeated message through the first time, then once per interval."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._next = 0.0

    def allow(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval_s
        return True


@dataclass
class Pending:
    """One event waiting for the broker; ``seq`` is 0 if it has no number."""

    seq: int
    payload: str
    stored: bool = True


class Outbox:
    """The SQLite outbox; safe to share between the frame loop and the sender."""

    def __init__(
        self,
        path: Path | str,
        max_events: int = 100_000,
        max_bytes: int = 64_000_000,
        synchronous: str = "FULL",
    ) -> None:
        self.path = str(path)
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.errors = 0  # SQLite errors met, each answered without raising
        self._lock = threading.Lock()
        self._throttles: dict[str, LogThrottle] = {}
        self._unsaved_drops = 0
        try:
            self._db = self._load(self.path, synchronous)
            self.durable = True
        except sqlite3.Error as exc:
            log.warning(
                "Outbox %s cannot be opened (%s); events are kept in memory "
                "only and a restart loses those not yet sent",
                self.path,
                exc,
            )
            self._db = self._load(":memory:", synchronous)
            self.durable = False
        self._disk = DiskReserve(self.path, enabled=self.durable)
        self._disk.claim()
        if self._rows:
            log.info(
                "Outbox %s holds %d events from an earlier run", self.path, self._rows
            )

    def _load(self, path: str, synchronous: str) -> sqlite3.Connection:
        """Open the database and read its figures: rows, bytes, drops, last seq."""
        db = open_database(path, synchronous)
        try:
            self._rows, self._bytes, self._oldest = db.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0), "
                "coalesce(min(created), 0) FROM events"
            ).fetchone()
            self._saved_drops = counter(db, "dropped")
            row = db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
            ).fetchone()
            self._next_seq = max(row[0] if row else 0, counter(db, "last_seq")) + 1
        except sqlite3.Error:
            db.close()
            raise
        # Stored events leave their seq in sqlite_sequence; a refused one's goes
        # here, in a row made now so that a full disk need not find a new page.
        with contextlib.suppress(sqlite3.Error):
            record_seq(db, self._next_seq - 1)
        return db

    def add(self, event: dict[str, Any]) -> Pending:
        """Number an event and store it; ``stored`` is False if the disk refused."""
        with self._lock:
            seq = self._next_seq
            payload = _payload(event, seq)
            failure: sqlite3.Error = sqlite3.OperationalError("the disk is full")
            for _ in range(FULL_DISK_RETRIES):
                try:
                    self._insert(seq, str(event.get("id", "")), payload)
                except sqlite3.Error as exc:
                    failure = exc
                    if is_full(exc) and self._make_room():
                        continue
                    break
                else:
                    self._next_seq = seq + 1
                    self._enforce_bounds()
                    self._lift_cap()
                    return Pending(seq, payload)
            return self._unstored(event, seq, failure)

    def _unstored(self, event: dict[str, Any], seq: int, exc: sqlite3.Error) -> Pending:
        """An event the disk refused, numbered only if its number can be kept."""
        self._warn("cannot store events", exc)
        try:
            with transaction(self._db):
                record_seq(self._db, seq)
        except sqlite3.Error as record_exc:
            self._warn("cannot record a sequence number", record_exc)
            return Pending(0, _payload(event, None), stored=False)
        self._next_seq = seq + 1
        return Pending(seq, _payload(event, seq), stored=False)

    def _make_room(self) -> bool:
        """Free space on a full disk; False if there was nothing left to free."""
        if self._disk.capped and self._lift_cap(now=True):
            return True  # the cap was full, not the disk
        released = self._disk.give_back()
        self._disk.cap(self._db, released)
        dropped = self._rows > 0 and self._drop_oldest(
            max(1, self._rows // 10), "the disk is full"
        )
        return released or dropped

    def _lift_cap(self, now: bool = False) -> bool:
        try:
            return self._disk.lift(self._db, now)
        except sqlite3.Error as exc:
            self._warn("cannot lift its full-disk cap", exc)
            return False

    def count_lost(self, count: int = 1) -> None:
        """Count events that were neither stored nor handed to the broker."""
        with self._lock:
            self._unsaved_drops += count

    def _insert(self, seq: int, event_id: str, payload: str) -> None:
        created = time.time()
        with transaction(self._db):
            self._db.execute(
                "INSERT INTO events (seq, id, created, payload) VALUES (?, ?, ?, ?)",
                (seq, event_id, created, payload),
            )
            if self._unsaved_drops:
                self._bump_dropped(self._unsaved_drops)
        self._saved_drops += self._unsaved_drops
        self._unsaved_drops = 0
        if not self._rows:
            self._oldest = created
        self._rows += 1
        self._bytes += len(payload)

    def _enforce_bounds(self) -> None:
        excess = self._rows - self.max_events
        if excess <= 0 and self._bytes > self.max_bytes:
            average = self._bytes / max(1, self._rows)
            excess = int((self._bytes - self.max_bytes) / average) + 1
        if excess > 0:
            self._drop_oldest(excess, "the outbox is at its size limit")

    def _drop_oldest(self, count: int, why: str) -> bool:
        """Delete the ``count`` oldest events and count them; False if none went."""
        try:
            with transaction(self._db):
                dropped, size = self._db.execute(
                    "SELECT count(*), coalesce(sum(length(payload)), 0) FROM "
                    "(SELECT payload FROM events ORDER BY seq LIMIT ?)",
                    (count,),
                ).fetchone()
                self._db.execute(
                    "DELETE FROM events WHERE seq IN "
                    "(SELECT seq FROM events ORDER BY seq LIMIT ?)",
                    (count,),
                )
                self._bump_dropped(dropped)
        except sqlite3.Error as exc:
            self._warn("cannot drop old events", exc)
            return False
        self._saved_drops += dropped
        self._rows -= dropped
        self._bytes -= size
        if dropped and self._throttle("drop").allow():
            # Events are lost: an error, but one line a minute says enough.
            log.error(
                "Outbox %s lost the %d oldest events: %s", self.path, dropped, why
            )
        return dropped > 0

    def _bump_dropped(self, count: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (count,),
        )

    def _throttle(self, what: str) -> LogThrottle:
        return self._throttles.setdefault(what, LogThrottle())

    def _warn(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        if self._throttle(what).allow():
            log.warning(
                "Outbox %s %s (%s); %d SQLite errors so far",
                self.path,
                what,
                exc,
                self.errors,
            )

    def remove(self, seqs: list[int]) -> bool:
        """Forget events the broker acknowledged; False if the disk refused."""
        # A batch per lock and transaction: the frame loop waits behind one
        # commit at most, and each batch fits in the WAL a full disk leaves.
        for start in range(0, len(seqs), REMOVE_BATCH):
            with self._lock:
                try:
                    self._delete(seqs[start : start + REMOVE_BATCH])
                except sqlite3.Error as exc:
                    self._warn("cannot forget acknowledged events", exc)
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("PRAGMA wal_checkpoint(RESTART)")
                    return False
        if seqs:
            with self._lock:
                self._lift_cap()
        return True

    def _delete(self, seqs: list[int]) -> None:
        chosen = json.dumps(seqs)
        with transaction(self._db):
            gone, size = self._db.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM events "
                "WHERE seq IN (SELECT value FROM json_each(?))",
                (chosen,),
            ).fetchone()
            self._db.execute(
                "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?))",
                (chosen,),
            )
        self._rows -= gone
        self._bytes -= size

    def after(self, seq: int, limit: int) -> list[Pending]:
        """Up to ``limit`` stored events with a sequence above ``seq``, in order."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq "
                    "LIMIT ?",
                    (seq, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                self._warn("cannot read waiting events", exc)
                return []
        return [Pending(s, p) for s, p in rows]

    def backlog(self) -> int:
        """Events stored and not yet acknowledged."""
        return int(self._rows)

    def dropped(self) -> int:
        """Events dropped since the outbox was created, across restarts."""
        return self._saved_drops + self._unsaved_drops

    def oldest_age_s(self) -> float:
        """Seconds since the oldest waiting event was stored; 0 when empty."""
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT created FROM events ORDER BY seq LIMIT 1"
                ).fetchone()
                self._oldest = row[0] if row else 0.0
            except sqlite3.Error as exc:
                self._warn("cannot read its oldest event", exc)
        return max(0.0, time.time() - self._oldest) if self._rows else 0.0

    def state(self) -> dict[str, Any]:
        """The outbox's figures for the heartbeat."""
        return {
            "backlog": self.backlog(),
            "dropped": self.dropped(),
            "oldest_pending_s": round(self.oldest_age_s(), 1),
            "durable": self.durable,
            "errors": self.errors,
        }

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()


def _payload(event: dict[str, Any], seq: int | None) -> str:
    return json.dumps({**event, "seq": seq}, default=_plain)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python values; anything else as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def open_outbox(
    state_dir: Path, max_events: int, max_mb: float, synchronous: str
) -> Outbox:
    """The outbox file in ``state_dir``, creating the folder if needed."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("State folder %s cannot be created (%s)", state_dir, exc.strerror)
    return Outbox(
        state_dir / "outbox.sqlite3", max_events, int(max_mb * 1_000_000), synchronous
    )
