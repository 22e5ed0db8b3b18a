"""The outbox keeps events on disk in order, bounded, and survives a full disk."""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mqtt_helpers import fill, small_tmpfs

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


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[tuple[Outbox, Path]]:
    """An outbox with 20 events on a real 2 MB disk, then the disk filled up."""
    with small_tmpfs(tmp_path / "small", "2m") as disk:
        outbox = Outbox(disk / "outbox.sqlite3")
        for n in range(20):
            assert outbox.add(event(n, size=2000)).stored
        yield outbox, fill(disk)
        outbox.close()


def test_full_disk_drops_the_oldest_and_keeps_storing(
    full_disk: tuple[Outbox, Path], caplog: pytest.LogCaptureFixture
) -> None:
    outbox, _ = full_disk
    results = [outbox.add(event(n, size=2000)) for n in range(20, 220)]
    assert all(p.stored for p in results[-20:]), "new events still get stored"
    assert outbox.dropped() > 0
    kept = [p.seq for p in outbox.after(0, 1000)]
    assert kept == sorted(kept) and kept[-1] == 220
    assert outbox.dropped() + len(kept) == 220
    assert outbox.state()["errors"] == 0, "a full disk is not an SQLite failure"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("oldest events" in r.getMessage() for r in errors)


def test_full_disk_cap_is_lifted_once_the_disk_has_room(
    full_disk: tuple[Outbox, Path],
) -> None:
    outbox, filler = full_disk
    for n in range(20, 220):
        outbox.add(event(n, size=2000))
    capped_at = outbox.backlog()
    dropped = outbox.dropped()
    filler.unlink()  # the disk has room again; the broker is still away
    for n in range(220, 320):
        assert outbox.add(event(n, size=2000)).stored
    assert outbox.dropped() == dropped, "nothing dropped once the disk has room"
    assert outbox.backlog() == capped_at + 100
    assert Path(f"{outbox.path}.reserve").exists(), "the reserve is claimed again"


def test_event_too_big_for_the_disk_is_refused_and_its_seq_kept(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "small", "1m") as disk:
        path = disk / "outbox.sqlite3"
        outbox = Outbox(path)
        pending = outbox.add(event(0, size=2_000_000))
        assert not pending.stored
        assert pending.seq == json.loads(pending.payload)["seq"] == 1
        # No close(): the process may die right after sending it without a copy.
        restarted = Outbox(path)
        assert restarted.add(event(1)).seq == 2, "a sequence number is never reused"
        restarted.count_lost()
        assert restarted.dropped() == 1
        restarted.close()
        outbox.close()


def test_another_writer_holding_the_file_is_not_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    outbox.add(event(0))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. a technician's sqlite3 shell
    try:
        pending = outbox.add(event(1))
        assert not pending.stored
        assert json.loads(pending.payload)["seq"] is None, "no number to reuse"
        assert not outbox.remove([1]), "the sender's delete is refused, not raised"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert outbox.add(event(2)).seq == 2
    assert outbox.remove([1, 2]) and outbox.backlog() == 0
    assert outbox.state()["errors"] >= 3
    assert Outbox(path).add(event(3)).seq == 3


def test_no_sqlite_error_reaches_the_frame_loop_or_the_sender(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.add(event(0))
    outbox.close()  # from here on every SQLite call fails
    with caplog.at_level(logging.DEBUG, logger="edge_agent.outbox"):
        for _ in range(3):
            assert outbox.after(0, 10) == []
            assert not outbox.add(event(1)).stored
            assert not outbox.remove([1])
            outbox.count_lost()
            state = outbox.state()
    assert state["backlog"] == 1 and state["dropped"] == 3
    assert state["oldest_pending_s"] >= 0.0
    assert state["errors"] == 15
    warnings = [r.getMessage() for r in caplog.records]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert len(warnings) == 5, "each kind of failure is logged once a minute"


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
