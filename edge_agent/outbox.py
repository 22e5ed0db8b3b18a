"""The outbox: compliance events kept on disk until the broker acknowledges them.

Each event is one row of an SQLite database in WAL mode, numbered by a sequence
that only grows (``seq``, also put in the published payload so a consumer can
order events and see gaps). A row is deleted only when the broker's PUBACK for
it arrives, so an event survives a lost connection, a restart and ``kill -9``;
its ``id`` makes the rare second delivery harmless.

What is synced when: every event is its own committed transaction. With
``synchronous=FULL`` SQLite fsyncs the WAL at each commit, so a stored event
survives power loss too, at the price of one fsync per event. With ``NORMAL``
the WAL is fsynced only at checkpoints: a commit sits in the OS page cache, so
it survives the agent being killed (``kill -9``, a crash, the OOM killer) but
the last events before a power cut or kernel panic can be lost.

The outbox is bounded by rows and by payload bytes: past either, the oldest
events are dropped first and counted in a counter kept in the database. A full
disk is handled the same way: the outbox gives back a reserve file it keeps
for this, checkpoints, drops the oldest and retries; an event that still
cannot be stored is handed to the broker without a copy on disk if the
connection is up, and counted as dropped if not. Nothing here raises into the
frame loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    created REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
FULL_DISK_RETRIES = 3
# Space held in a file beside the database and given back when the disk is
# full: on a 100 % full disk SQLite cannot even delete (the WAL must grow).
RESERVE_BYTES = 512 * 1024
WAL_CHECKPOINT_PAGES = 50  # keeps the WAL (and the room it needs) small
REMOVE_BATCH = 32
DROP_LOG_INTERVAL_S = 60.0


@dataclass
class Pending:
    """One stored event waiting for the broker."""

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
        self._lock = threading.Lock()
        self._unsaved_drops = 0
        self._last_drop_log = 0.0
        self._reserve = Path(f"{path}.reserve")
        self._reserve_retry_at = 0.0
        try:
            self._db = self._open(self.path, synchronous)
            self.durable = True
        except sqlite3.Error as exc:
            log.error(
                "Outbox %s cannot be opened (%s); events are kept in memory "
                "only and a restart loses those not yet sent",
                self.path,
                exc,
            )
            self._db = self._open(":memory:", synchronous)
            self.durable = False
        self._capped = False
        self._max_pages = int(self._db.execute("PRAGMA max_page_count").fetchone()[0])
        if self.durable:
            self._keep_reserve()
        self._rows, self._bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM events"
        ).fetchone()
        row = self._db.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
        ).fetchone()
        self._next_seq = (row[0] if row else 0) + 1
        if self._rows:
            log.info(
                "Outbox %s holds %d events from an earlier run", self.path, self._rows
            )

    @staticmethod
    def _open(path: str, synchronous: str) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            # Without a limit the WAL file keeps its largest size on disk.
            db.execute("PRAGMA journal_size_limit=1048576")
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            db.execute("PRAGMA temp_store=MEMORY")
            db.executescript(SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    def add(self, event: dict[str, Any]) -> Pending:
        """Number an event and store it; ``stored`` is False if the disk refused."""
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            payload = json.dumps({**event, "seq": seq}, default=_plain)
            for _ in range(FULL_DISK_RETRIES):
                try:
                    self._insert(seq, str(event.get("id", "")), payload)
                except sqlite3.Error as exc:
                    if _is_full(exc) and self._make_room():
                        continue
                    self._log_drop(f"event {seq} cannot be stored ({exc})")
                    return Pending(seq, payload, stored=False)
                self._enforce_bounds()
                return Pending(seq, payload)
            self._log_drop(f"event {seq} cannot be stored: the disk is full")
            return Pending(seq, payload, stored=False)

    def _make_room(self) -> bool:
        """Free space on a full disk; False if there was nothing left to free."""
        released = False
        if self.durable and self._reserve.exists():
            self._reserve.unlink(missing_ok=True)
            released = True
            log.warning(
                "Disk of %s is full; the outbox's %d KB reserve is given back",
                self.path,
                RESERVE_BYTES // 1024,
            )
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(RESTART)")
            # From now on the file must not grow: a checkpoint that needs a
            # larger file would fail, and with it every delete. Freed pages
            # of dropped events are reused instead.
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            if released:  # half the reserve for rows, half for the WAL
                size = self._db.execute("PRAGMA page_size").fetchone()[0]
                pages += RESERVE_BYTES // 2 // size
            self._db.execute(f"PRAGMA max_page_count={int(pages)}")
            self._capped = True
        dropped = self._rows > 0 and self._drop_oldest(
            max(1, self._rows // 10), "the disk is full"
        )
        return released or dropped

    def _uncap(self) -> None:
        if self._capped:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute(f"PRAGMA max_page_count={self._max_pages}")
                self._capped = False
                log.info("Outbox %s may grow again", self.path)

    def _keep_reserve(self) -> None:
        """Claim the reserve file again, once the disk has room for it."""
        now = time.monotonic()
        if now < self._reserve_retry_at or self._reserve.exists():
            return
        self._reserve_retry_at = now + DROP_LOG_INTERVAL_S
        try:
            with open(self._reserve, "wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, RESERVE_BYTES)
        except OSError as exc:
            self._reserve.unlink(missing_ok=True)
            log.debug("Outbox reserve %s not claimed (%s)", self._reserve, exc)

    def count_lost(self, count: int = 1) -> None:
        """Count events that were neither stored nor handed to the broker."""
        with self._lock:
            self._unsaved_drops += count

    def _insert(self, seq: int, event_id: str, payload: str) -> None:
        with _transaction(self._db):
            self._db.execute(
                "INSERT INTO events (seq, id, created, payload) VALUES (?, ?, ?, ?)",
                (seq, event_id, time.time(), payload),
            )
            if self._unsaved_drops:
                self._bump_dropped(self._unsaved_drops)
        self._unsaved_drops = 0
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
            with _transaction(self._db):
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
            log.error("Outbox cannot drop old events (%s)", exc)
            return False
        self._rows -= dropped
        self._bytes -= size
        if dropped:
            self._log_drop(f"{dropped} oldest events dropped: {why}")
        return dropped > 0

    def _bump_dropped(self, count: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (count,),
        )

    def _log_drop(self, message: str) -> None:
        # A full disk drops on every frame; one line a minute says enough.
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            log.error("Outbox %s: %s", self.path, message)

    def remove(self, seqs: list[int]) -> bool:
        """Forget events the broker acknowledged; False if the disk refused."""
        with self._lock:
            # Small transactions: each fits in the WAL a full disk lets us keep.
            for start in range(0, len(seqs), REMOVE_BATCH):
                try:
                    self._delete(seqs[start : start + REMOVE_BATCH])
                except sqlite3.Error as exc:
                    log.warning("Outbox cannot forget acknowledged events (%s)", exc)
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("PRAGMA wal_checkpoint(RESTART)")
                    return False
            if self.durable and not self._rows:
                self._keep_reserve()
                if self._reserve.exists():  # the disk has room again
                    self._uncap()
            return True

    def _delete(self, seqs: list[int]) -> None:
        gone = size = 0
        with _transaction(self._db):
            for seq in seqs:
                row = self._db.execute(
                    "SELECT length(payload) FROM events WHERE seq = ?", (seq,)
                ).fetchone()
                if row:
                    self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))
                    gone += 1
                    size += row[0]
        self._rows -= gone
        self._bytes -= size

    def after(self, seq: int, limit: int) -> list[Pending]:
        """Up to ``limit`` stored events with a sequence above ``seq``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [Pending(s, p) for s, p in rows]

    def backlog(self) -> int:
        """Events stored and not yet acknowledged."""
        return int(self._rows)

    def dropped(self) -> int:
        """Events dropped since the outbox was created, across restarts."""
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM counters WHERE name = 'dropped'"
            ).fetchone()
            return (row[0] if row else 0) + self._unsaved_drops

    def oldest_age_s(self) -> float:
        """Seconds since the oldest waiting event was stored; 0 when empty."""
        with self._lock:
            row = self._db.execute(
                "SELECT created FROM events ORDER BY seq LIMIT 1"
            ).fetchone()
        return max(0.0, time.time() - row[0]) if row else 0.0

    def state(self) -> dict[str, Any]:
        """The outbox's figures for the heartbeat."""
        return {
            "backlog": self.backlog(),
            "dropped": self.dropped(),
            "oldest_pending_s": round(self.oldest_age_s(), 1),
            "durable": self.durable,
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        # After a failed COMMIT SQLite may have rolled back already.
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python values; anything else as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _is_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "full" in str(exc)


def open_outbox(
    state_dir: Path, max_events: int, max_mb: float, synchronous: str
) -> Outbox:
    """The outbox file in ``state_dir``, creating the folder if needed."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("State folder %s cannot be created (%s)", state_dir, exc.strerror)
    return Outbox(
        state_dir / "outbox.sqlite3", max_events, int(max_mb * 1_000_000), synchronous
    )
