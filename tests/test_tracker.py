"""The tracker follows annotated face boxes from the dataset as they move."""

from __future__ import annotations

from conftest import DATASET, val_scene_names

from convert.dataset import read_annotation
from edge_agent.crop import Box
from edge_agent.geometry import iou
from edge_agent.tracker import Tracker

FPS = 15.0  # frame times in these tests, as from a door camera


def real_faces(count: int, min_px: int = 30) -> list[Box]:
    """Boxes of the first val scene holding ``count`` faces of at least min_px."""
    for name in val_scene_names():
        _, faces = read_annotation(DATASET / "annotations" / f"{name}.xml")
        boxes = [f.box for f in faces if min(f.box[2], f.box[3]) >= min_px]
        if len(boxes) >= count:
            return boxes[:count]
    raise AssertionError(f"no val scene has {count} faces of {min_px} px")


def shifted(box: Box, dx: float, dy: float = 0.0, grow: float = 0.0) -> Box:
    return (
        round(box[0] + dx),
        round(box[1] + dy),
        round(box[2] + grow),
        round(box[3] + grow),
    )


def test_a_face_walking_past_keeps_one_track() -> None:
    start = real_faces(1)[0]
    tracker = Tracker(min_iou=0.3, max_missed=5)
    step = start[2] / 6
    ids = set()
    for frame in range(30):
        box = shifted(start, step * frame, step / 3 * frame, grow=frame / 2)
        tracks, ended = tracker.update([box], frame, frame / 15)
        ids.add(tracks[0].id)
        assert not ended
    assert len(ids) == 1
    assert tracks[0].frames == 30


def test_prediction_bridges_missed_frames_that_overlap_alone_would_not() -> None:
    start = real_faces(1)[0]
    step = start[2] / 5
    tracker = Tracker(min_iou=0.3, max_missed=5)
    for frame in range(6):
        tracks, _ = tracker.update([shifted(start, step * frame)], frame, frame / FPS)
    first = tracks[0]
    last_seen = first.box
    for frame in range(6, 9):
        assert tracker.update([], frame, frame / FPS) == ([], [])
    back = shifted(start, step * 9)
    # The face moved out of its last box, so overlap alone would start a new track.
    assert iou(back, last_seen) < 0.3
    tracks, ended = tracker.update([back], 9, 9 / FPS)
    assert tracks[0] is first and not ended
    assert first.missed == 0


def test_a_face_gone_too_long_ends_and_returns_as_a_new_person() -> None:
    box = real_faces(1)[0]
    tracker = Tracker(min_iou=0.3, max_missed=3)
    first = tracker.update([box], 0, 0.0)[0][0]
    ended_at = None
    for frame in range(1, 6):
        _, ended = tracker.update([], frame, frame / FPS)
        if ended:
            assert ended == [first]
            ended_at = frame
    assert ended_at == 4  # three missed frames survive, the fourth ends it
    again = tracker.update([box], 6, 6 / FPS)[0][0]
    assert again.id != first.id
    assert again.id > first.id


def test_side_by_side_faces_keep_their_own_ids() -> None:
    faces = real_faces(2)
    tracker = Tracker()
    first_ids = None
    for frame in range(20):
        boxes = [shifted(box, 2 * frame, frame % 3) for box in faces]
        # The detector lists faces in no fixed order.
        order = boxes if frame % 2 else boxes[::-1]
        tracks, _ = tracker.update(order, frame, frame / FPS)
        ids = {box: track.id for box, track in zip(order, tracks, strict=True)}
        current = [ids[box] for box in boxes]
        first_ids = first_ids or current
        assert current == first_ids
    assert len(set(first_ids)) == 2


def test_end_all_ends_every_track() -> None:
    tracker = Tracker()
    tracks, _ = tracker.update(real_faces(2), 0, 0.0)
    assert sorted(t.id for t in tracker.end_all()) == sorted(t.id for t in tracks)
    assert tracker.tracks == []
    fresh, _ = tracker.update(real_faces(2), 1, 1.0)
    assert {t.id for t in fresh}.isdisjoint({t.id for t in tracks})


def test_a_track_unseen_for_too_long_ends_even_without_frames() -> None:
    box = real_faces(1)[0]
    tracker = Tracker(max_missed=5, max_gap_s=2.0)
    first = tracker.update([box], 0, 0.0)[0][0]
    # The camera delivered nothing for ten minutes; the same spot, a new person.
    tracks, ended = tracker.update([box], 1, 600.0)
    assert ended == [first]
    assert tracks[0].id != first.id
