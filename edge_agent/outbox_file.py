"""The outbox's SQLite file: opening it, transactions, counters, and the room
kept beside it for the day the disk fills up.

On a 100 % full disk SQLite cannot even delete (the WAL must grow), so the
outbox holds a reserve file beside its database and gives it back when the
disk is full. From then on the database file is capped: a checkpoint that
needs a larger file would fail, and with it every delete, so the pages of
dropped events are reused instead. The cap is lifted as soon as the reserve
can be claimed again with as much room again to spare.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

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
WAL_CHECKPOINT_PAGES = 50  # keeps the WAL (and the room it needs) small
BUSY_TIMEOUT_S = 0.2  # for another process writing the file; not the 5 s default
RESERVE_BYTES = 512 * 1024
RETRY_S = 10.0  # how often a missing reserve is claimed again


class DiskReserve:
    """The reserve file of one outbox database, and the cap on its size."""

    def __init__(self, database: str, enabled: bool = True) -> None:
        self.path = Path(f"{database}.reserve")
        self.enabled = enabled
        self.capped = False
        self.held = False  # the reserve file is ours, as far as we know
        self._max_pages = 0
        self._retry_at = 0.0

    def claim(self) -> bool:
        """Take the reserve's room on the disk; False if the disk has none."""
        if not self.enabled:
            return False
        try:
            with open(self.path, "wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, RESERVE_BYTES)
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
            log.debug("Outbox reserve %s not claimed (%s)", self.path, exc)
            return False
        self.held = True
        return True

    def give_back(self) -> bool:
        """Free the reserve's room; False if there was no reserve to free."""
        if not self.held:
            return False
        self.held = False
        try:
            self.path.unlink()
        except OSError:
            return False
        log.warning(
            "Disk of %s is full; the outbox's %d KB reserve is given back",
            self.path.parent,
            RESERVE_BYTES // 1024,
        )
        return True

    def cap(self, db: sqlite3.Connection, released: bool) -> None:
        """Stop the database file growing; half a given-back reserve may be used."""
        with contextlib.suppress(sqlite3.Error):
            if not self.capped:
                self._max_pages = db.execute("PRAGMA max_page_count").fetchone()[0]
            db.execute("PRAGMA wal_checkpoint(RESTART)")
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            if released:  # half the reserve for rows, half for the WAL
                size = db.execute("PRAGMA page_size").fetchone()[0]
                pages += RESERVE_BYTES // 2 // size
            db.execute(f"PRAGMA max_page_count={int(pages)}")
            self.capped = True

    def lift(self, db: sqlite3.Connection, now: bool = False) -> bool:
        """Claim a missing reserve again, then lift the cap; True if it was lifted.

        Tried at most every ``RETRY_S`` unless ``now``; raises ``sqlite3.Error``
        only if the cap cannot be changed.
        """
        if not self.enabled or (self.held and not self.capped):
            return False
        if not self.held:
            moment = time.monotonic()
            if not now and moment < self._retry_at:
                return False
            self._retry_at = moment + RETRY_S
            if self.capped and _free_bytes(self.path) < 2 * RESERVE_BYTES:
                return False
            if not self.claim():
                return False
        if not self.capped:
            return False
        db.execute(f"PRAGMA max_page_count={int(self._max_pages)}")
        self.capped = False
        log.info("Disk of %s has room again; the outbox may grow", self.path.parent)
        return True


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        # After a failed COMMIT SQLite may have rolled back already.
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def open_database(path: str, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
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


def counter(db: sqlite3.Connection, name: str) -> int:
    row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def record_seq(db: sqlite3.Connection, seq: int) -> None:
    """Keep the number of an event the disk refused: a restart must skip it."""
    db.execute(
        "INSERT INTO counters (name, value) VALUES ('last_seq', ?) "
        "ON CONFLICT(name) DO UPDATE SET value = max(value, excluded.value)",
        (seq,),
    )


def is_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "full" in str(exc)


def _free_bytes(path: Path) -> int:
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return 0
    return stats.f_bavail * stats.f_frsize
