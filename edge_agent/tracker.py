"""The face tracker: follows each face from frame to frame as one track."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

from edge_agent.crop import Box
from edge_agent.geometry import match_boxes

log = logging.getLogger(__name__)

# Weight of the newest displacement in the velocity estimate; the rest is the
# old estimate, which smooths out the detector's jitter.
VELOCITY_WEIGHT = 0.5

Motion = tuple[float, float, float, float]


@dataclass
class Track:
    """One face followed across frames; ``first_seen`` is a monotonic time."""

    id: int
    box: Box
    first_seen: float
    first_frame: int
    last_seen: float
    frames: int = 1
    missed: int = 0
    velocity: Motion = (0.0, 0.0, 0.0, 0.0)  # change of x, y, w, h per frame

    def predicted(self) -> Box:
        """Where the face should be in the next frame if it keeps moving."""
        steps = self.missed + 1
        x, y, w, h = (
            v + d * steps for v, d in zip(self.box, self.velocity, strict=True)
        )
        return round(x), round(y), max(1, round(w)), max(1, round(h))

    def follow(self, box: Box, at: float) -> None:
        """Move the track to the face's new box and update its velocity."""
        steps = self.missed + 1
        moved = [(new - old) / steps for new, old in zip(box, self.box, strict=True)]
        # The first step has no earlier estimate to smooth with.
        keep = 0.0 if self.frames == 1 else 1.0 - VELOCITY_WEIGHT
        x, y, w, h = (
            keep * old + (1.0 - keep) * new
            for old, new in zip(self.velocity, moved, strict=True)
        )
        self.velocity = (x, y, w, h)
        self.box = box
        self.frames += 1
        self.missed = 0
        self.last_seen = at


class Tracker:
    """Matches each frame's faces to tracks by overlap with their predicted boxes.

    Matching is greedy, best overlap first, which is enough for the few faces a
    kiosk sees at once. A track survives ``max_missed`` frames without its face
    (a blink of the detector), and no longer than ``max_gap_s`` seconds unseen
    (frames can stop, as when the camera is lost); after that it ends, and a
    face that comes back later starts a new track.
    """

    def __init__(
        self, min_iou: float = 0.3, max_missed: int = 5, max_gap_s: float = 2.0
    ) -> None:
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.max_gap_s = max_gap_s
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def update(
        self, boxes: list[Box], frame_index: int, at: float
    ) -> tuple[list[Track], list[Track]]:
        """The track of each box, in order, and the tracks that ended now."""
        live, gone = self._expire(at)
        pairs = match_boxes([track.predicted() for track in live], boxes, self.min_iou)
        found: list[Track] = []
        started: list[Track] = []
        for index, box in enumerate(boxes):
            if index in pairs:
                track = live[pairs[index]]
                track.follow(box, at)
            else:
                track = Track(next(self._ids), box, at, frame_index, at)
                started.append(track)
                log.debug("Track %d starts at %s", track.id, list(box))
            found.append(track)

        followed = set(pairs.values())
        kept: list[Track] = []
        ended: list[Track] = gone
        for index, track in enumerate(live):
            if index not in followed:
                track.missed += 1
            (ended if track.missed > self.max_missed else kept).append(track)
        self.tracks = kept + started
        return found, ended

    def _expire(self, now: float) -> tuple[list[Track], list[Track]]:
        """Split tracks into those still live and those unseen for too long."""
        live = [t for t in self.tracks if now - t.last_seen <= self.max_gap_s]
        gone = [t for t in self.tracks if now - t.last_seen > self.max_gap_s]
        return live, gone

    def end_all(self) -> list[Track]:
        """End every track, as at a scene cut or the end of the source."""
        ended, self.tracks = self.tracks, []
        return ended
