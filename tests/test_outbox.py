"""The outbox keeps events on disk in order, bounded, and survives a full disk."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.outbox import Outbox, open_outbox


def event(number: int = 0, size: int = 0) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "verdict": "with_mask",
        "n": number,
        "pad": "x" * size,
    }


def test_events_keep_their_order_and_leave_only_when_acknowledged(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    stored = [outbox.add(event(n)) for n in range(5)]
    assert [p.seq for p in stored] == [1, 2, 3, 4, 5]
    assert all(p.stored for p in stored)
    assert json.loads(stored[2].payload)["seq"] == 3
    assert json.loads(stored[2].payload)["n"] == 2

    assert outbox.remove([2, 4])
    assert outbox.backlog() == 3
    assert [p.seq for p in outbox.after(0, 10)] == [1, 3, 5]
    assert [p.seq for p in outbox.after(3, 10)] == [5]
    assert outbox.oldest_age_s() >= 0.0


def test_backlog_and_sequence_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    first = Outbox(path, synchronous="NORMAL")
    for n in range(3):
        first.add(event(n))
    first.remove([1, 2, 3])
    first.add(event(3))
    # No close(): the process may die at any moment.
    second = Outbox(path, synchronous="NORMAL")
    assert [p.seq for p in second.after(0, 10)] == [4]
    assert second.add(event(4)).seq == 5, "a sequence number is never reused"
    assert second.state()["backlog"] == 2


def test_row_limit_drops_the_oldest_and_counts_them_across_restarts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path, max_events=10)
    for n in range(25):
        outbox.add(event(n))
    assert outbox.backlog() == 10
    assert [p.seq for p in outbox.after(0, 100)] == list(range(16, 26))
    assert outbox.dropped() == 15
    outbox.close()
    assert Outbox(path, max_events=10).dropped() == 15


def test_size_limit_drops_the_oldest(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_bytes=20_000)
    for n in range(50):
        outbox.add(event(n, size=1000))
    kept = outbox.after(0, 100)
    assert sum(len(p.payload) for p in kept) <= 20_000
    assert len(kept) >= 15
    assert kept[-1].seq == 50
    assert outbox.dropped() == 50 - len(kept)


def test_full_disk_drops_the_oldest_and_keeps_storing(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    # SQLite reports a page limit exactly as a full disk: SQLITE_FULL.
    outbox._db.execute("PRAGMA max_page_count = 40")
    results = [outbox.add(event(n, size=2000)) for n in range(200)]
    assert all(p.stored for p in results[-20:]), "new events still get stored"
    assert outbox.dropped() > 0
    kept = [p.seq for p in outbox.after(0, 1000)]
    assert kept == sorted(kept) and kept[-1] == 200
    assert outbox.dropped() + len(kept) == 200


def test_event_too_big_for_the_disk_is_refused_not_raised(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox._db.execute("PRAGMA max_page_count = 8")
    pending = outbox.add(event(0, size=1_000_000))
    assert not pending.stored
    assert json.loads(pending.payload)["seq"] == 1
    outbox.count_lost()
    assert outbox.dropped() == 1
    assert outbox.add(event(1)).stored, "a small event still fits"


def test_wal_mode_and_sync_level(tmp_path: Path) -> None:
    outbox = open_outbox(tmp_path / "state", 100, 1.0, "NORMAL")
    outbox.add(event())
    with sqlite3.connect(tmp_path / "state" / "outbox.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert (
        Outbox(tmp_path / "full.sqlite3")
        ._db.execute("PRAGMA synchronous")
        .fetchone()[0]
        == 2
    )  # FULL


def test_unusable_file_falls_back_to_memory(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-database"
    folder.mkdir()
    outbox = Outbox(folder)
    assert not outbox.durable
    assert outbox.add(event()).stored
    assert outbox.state()["durable"] is False


def test_numpy_values_are_stored_as_plain_json(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    pending = outbox.add(
        {"id": "a", "confidence": np.float32(0.5), "box": np.arange(2)}
    )
    assert json.loads(pending.payload)["confidence"] == 0.5
    assert json.loads(pending.payload)["box"] == [0, 1]
