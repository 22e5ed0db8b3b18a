"""The frame loop: source, detector, classifier, events and heartbeats."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from edge_agent.camera import Frame, FrameSource, open_source
from edge_agent.classifier import Classifier
from edge_agent.config import AgentConfig
from edge_agent.crop import Box
from edge_agent.decision import (
    SMALL,
    STILL_RULE,
    Decision,
    DecisionRule,
    Referee,
    Vote,
    Voter,
)
from edge_agent.face_detector import Face, FaceDetector, open_detector
from edge_agent.frame_quality import FrameQuality
from edge_agent.heartbeat import Stats, utc_at, utc_now
from edge_agent.kiosk import Kiosk
from edge_agent.labels import COMPLIANT
from edge_agent.publisher import Publisher
from edge_agent.service import ServiceNotifier
from edge_agent.tracker import Track, Tracker
from edge_agent.watchdog import CameraStatus

log = logging.getLogger(__name__)

# Told of each published event (a decision about a person).
DecisionHook = Callable[[dict[str, Any]], None]
# Told of every frame and its faces, each with its track's label so far
# (a class, or "unknown" before the track's decision).
FacesHook = Callable[[np.ndarray, list[tuple[Box, str]]], None]
# Told of each change of the camera's state (ok, lost, reconnecting...).
CameraHook = Callable[[CameraStatus], None]

# Longest wait for a frame before the loop does its other duties.
LOOP_TICK_S = 0.25
# Frames failing in a row before the agent exits for systemd to restart it.
MAX_FAILED_FRAMES = 20


@dataclass
class Summary:
    """What a run did, printed when a finite source ends."""

    frames: int
    faces: int
    small_faces: int
    verdicts: dict[str, int]  # of the decisions published as events
    events_published: int
    events_unacknowledged: int
    fps: float
    classifier_latency_ms: float
    tracks: int = 0
    undecided_tracks: int = 0
    rejected_frames: int = 0

    def lines(self) -> list[str]:
        per_verdict = ", ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items()))
        return [
            f"frames: {self.frames}  ({self.fps:.1f} fps)",
            f"frames giving no votes (black, covered, frozen): {self.rejected_frames}",
            f"faces classified: {self.faces}  (too small: {self.small_faces})",
            f"faces tracked: {self.tracks}  (ended undecided: {self.undecided_tracks})",
            f"events: {self.events_published}  ({per_verdict or 'none'})",
            f"events not acknowledged by the broker: {self.events_unacknowledged}",
            f"classifier latency, median: {self.classifier_latency_ms:.3f} ms",
        ]


class Agent:
    """Owns the parts and runs the loop until the source ends or a stop signal."""

    def __init__(self, config: AgentConfig, source_uri: str | None = None) -> None:
        self.config = config
        self.stats = Stats()
        self._stop = threading.Event()
        self.classifier = Classifier(
            Path(config.classifier.model_dir), config.classifier.threads
        )
        model = self.classifier.manifest
        self.model_info: dict[str, Any] = {
            "name": model.name,
            "version": model.version,
            "sha256": model.sha256,
            "labels": list(model.labels),
        }
        self.detector: FaceDetector = open_detector(
            config.detector.kind,
            Path(config.detector.model),
            config.detector.score_threshold,
        )
        self.source: FrameSource = open_source(
            source_uri or config.source.uri, config.source
        )
        self.camera = self.source.status
        self.on_camera: list[CameraHook] = []
        self.service = ServiceNotifier.from_environment()
        self.publisher = Publisher(config, self.model_info)
        self._set_up_decisions()
        self.kiosk = Kiosk.open(config)
        self.on_faces.append(self.kiosk.faces)
        self.on_decision.append(self.kiosk.decided)
        self.on_camera.append(self.kiosk.camera)
        self._failed_frames = 0
        self._failed_reports = 0

    def request_stop(self, signum: int = 0, frame: FrameType | None = None) -> None:
        log.info("Stop requested (signal %d)", signum)
        self._stop.set()

    def run(self, max_frames: int | None = None) -> Summary:
        """Read, process and report until the source ends or a stop is requested.

        The loop waits for frames with a timeout, so heartbeats, the camera
        state and the systemd watchdog go on while the camera is lost.
        """
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        log.info("Reading frames from %s", self.source.description)
        self.publisher.start()
        self.service.ready(self._service_status())
        next_heartbeat = time.monotonic()
        try:
            while not self._stop.is_set():
                frame = self.source.read(LOOP_TICK_S)
                self._guarded(self._watch_camera)
                if frame is not None:
                    self._process_safely(frame)
                    self.stats.frame_done()
                elif self.source.ended:
                    break
                if time.monotonic() >= next_heartbeat:
                    self._guarded(self._heartbeat)
                    self.service.status(self._service_status())
                    next_heartbeat = time.monotonic() + self.config.heartbeat.interval_s
                self.service.watchdog()
                if max_frames and self.stats.frames >= max_frames:
                    break
        finally:
            self.service.stopping()
            self.source.close()
            self._guarded(self._watch_camera)
            self._guarded(self._end_tracks)
            self._guarded(self._heartbeat)
            self.kiosk.close()
            self.publisher.stop()
            self.service.close()
        return self._summary()

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run a reporting step; its failure degrades reporting, not the loop."""
        try:
            step()
        except Exception as exc:
            self._failed_reports += 1
            if self._failed_reports in (1, 10, 100) or self._failed_reports % 1000 == 0:
                log.warning(
                    "Reporting step %s failed (%d times so far): %s",
                    step.__name__,
                    self._failed_reports,
                    exc,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )

    def _process_safely(self, frame: Frame) -> None:
        """Process a frame; one bad frame must not stop a kiosk, a run of them does."""
        try:
            self._process(frame)
        except Exception:
            self._failed_frames += 1
            self.stats.failed_frames += 1
            log.exception("Frame %d could not be processed", frame.index)
            self.kiosk.fault()
            if self._failed_frames >= MAX_FAILED_FRAMES:
                log.error("%d frames in a row failed; giving up", MAX_FAILED_FRAMES)
                raise
            return
        if self._failed_frames:
            self._failed_frames = 0
            self.kiosk.recovered()

    def _watch_camera(self) -> None:
        """Report a change of the camera's state: heartbeat, topic, screen, systemd."""
        status = self.source.status
        if status.state == self.camera.state:
            self.camera = status
            return
        self.camera = status
        self.stats.camera_state = status.state
        if not status.delivering:
            self._end_tracks()  # whoever stood there may be gone when frames return
        self.publisher.publish_retained("camera", status.payload())
        self.service.status(self._service_status())
        _tell(self.on_camera, status)

    def _service_status(self) -> str:
        """One line for ``systemctl status``: is the kiosk doing its job?"""
        broker = "connected" if self.publisher.connected.is_set() else "disconnected"
        fps = self.stats.fps() if self.camera.delivering else 0.0
        return (
            f"{fps:.1f} fps, {self.publisher.events_published} events, "
            f"broker {broker}, camera {self.camera.state}"
        )

    def _set_up_decisions(self) -> None:
        """The tracker and the decision rule, and hooks for the screen and LED."""
        decision = self.config.decision
        self.frame_quality = FrameQuality(
            self.config.frame_quality.black_level,
            self.config.frame_quality.covered_std,
            self.config.frame_quality.frozen_after_s,
        )
        self.tracker = Tracker(
            self.config.tracker.min_iou,
            self.config.tracker.max_missed_frames,
            self.config.tracker.max_gap_s,
        )
        self.voter = Voter(
            self.classifier,
            self.config.detector.min_face_px,
            decision.min_sharpness,
            decision.min_confidence,
        )
        rule = DecisionRule(
            decision.min_frames, decision.agreement, decision.window_frames
        )
        self.referee = Referee(rule, tuple(self.classifier.labels))
        self.on_decision: list[DecisionHook] = []
        self.on_faces: list[FacesHook] = []

    def _process(self, frame: Frame) -> None:
        """Let each face of a usable frame vote, and publish what votes decide.

        With ``decision.folder_as_stills`` each image of a folder is a separate
        photo, not a moment of one scene: it ends every track (a scene cut) and
        each face is decided from its single frame. Tracking across unrelated
        photos would merge strangers who happen to stand in the same place.
        """
        problem = self.frame_quality.check(frame.image, frame.captured_at)
        if problem is not None:
            self.stats.rejected_frames[problem] += 1
            log.debug("Frame %d is %s; it gives no votes", frame.index, problem)
            self._follow(frame, [], [])
            return
        rule = None
        if frame.name is not None and self.config.decision.folder_as_stills:
            self._end_tracks()
            rule = STILL_RULE
        faces = self.detector.detect(frame.image)
        log.debug("Frame %d: %d faces", frame.index, len(faces))
        votes = [self._vote(frame, face) for face in faces]
        self._follow(frame, faces, votes, rule)

    def _vote(self, frame: Frame, face: Face) -> Vote:
        vote = self.voter.vote(frame.image, face)
        if vote.verdict is not None:
            self.stats.classified(vote.verdict.label, self.classifier.last_latency_ms)
        if vote.doubt is not None:
            self.stats.unknown_votes[vote.doubt] += 1
        if vote.doubt == SMALL:
            self.stats.small_faces += 1
        return vote

    def _follow(
        self,
        frame: Frame,
        faces: list[Face],
        votes: list[Vote],
        rule: DecisionRule | None = None,
    ) -> None:
        tracks, ended = self.tracker.update(
            [face.box for face in faces], frame.index, frame.captured_at
        )
        self._close(ended)
        shown: list[tuple[Box, str]] = []
        for face, vote, track in zip(faces, votes, tracks, strict=True):
            if track.frames == 1:
                self.stats.tracks += 1
            decision = self.referee.vote(track.id, vote, rule)
            if decision is not None:
                self._publish(self._event(frame, face, track, decision))
            shown.append((face.box, self.referee.label(track.id)))
        _tell(self.on_faces, frame.image, shown)

    def _publish(self, event: dict[str, Any]) -> None:
        self.publisher.publish_event(event)
        self.stats.decisions[event["verdict"]] += 1
        log.info(
            "Track %d: %s (%.2f) from %d frames in %.2f s; event %s%s",
            event["track"],
            event["verdict"],
            event["confidence"],
            event["frames_used"],
            event["decision_s"],
            event["id"][:8],
            f" supersedes {event['supersedes'][:8]}" if event["supersedes"] else "",
        )
        _tell(self.on_decision, event)

    def _close(self, ended: list[Track]) -> None:
        for track in ended:
            if self.referee.end(track.id):
                self.stats.undecided_tracks += 1
                log.debug(
                    "Track %d ended undecided after %d frames", track.id, track.frames
                )

    def _end_tracks(self) -> None:
        self._close(self.tracker.end_all())

    def _event(
        self, frame: Frame, face: Face, track: Track, decision: Decision
    ) -> dict[str, Any]:
        where: dict[str, Any] = {"index": frame.index}
        if frame.name is not None:
            where["file"] = frame.name
        return {
            "id": decision.event_id,
            "device": self.config.device_id,
            "time": utc_now(),
            "track": track.id,
            "verdict": decision.verdict,
            "compliant": COMPLIANT[decision.verdict],
            "confidence": decision.confidence,
            "supersedes": decision.supersedes,
            "first_seen": utc_at(track.first_seen),
            "decided_at": utc_at(frame.captured_at),
            "decision_s": round(frame.captured_at - track.first_seen, 3),
            "frames_used": decision.frames_used,
            "votes": decision.votes,
            "box": list(face.box),
            "face_px": face.size,
            "frame": where,
            "model": {
                "version": self.model_info["version"],
                "sha256": self.model_info["sha256"],
            },
        }

    def _heartbeat(self) -> None:
        heartbeat = self.stats.heartbeat(
            self.config.device_id,
            self.model_info["version"],
            self.publisher.events_published,
        )
        judged = sum(self.stats.decisions.values())
        compliant = sum(n for v, n in self.stats.decisions.items() if COMPLIANT.get(v))
        heartbeat["compliance_rate"] = (
            round(100.0 * compliant / judged, 1) if judged else None
        )
        heartbeat["outbox"] = self.publisher.outbox_state()
        heartbeat["kiosk"] = self.kiosk.state()
        self.publisher.publish_heartbeat(heartbeat)

    def _summary(self) -> Summary:
        return Summary(
            frames=self.stats.frames,
            faces=self.stats.faces,
            small_faces=self.stats.small_faces,
            verdicts=dict(self.stats.decisions),
            events_published=self.publisher.events_published,
            events_unacknowledged=self.publisher.unacknowledged(),
            fps=self.stats.overall_fps(),
            classifier_latency_ms=self.stats.latency_ms(),
            tracks=self.stats.tracks,
            undecided_tracks=self.stats.undecided_tracks,
            rejected_frames=sum(self.stats.rejected_frames.values()),
        )


def _tell(hooks: list[Any], *args: Any) -> None:
    """Call each hook; a failing screen or LED must not stop the frame loop."""
    for hook in hooks:
        try:
            hook(*args)
        except Exception as exc:
            log.warning("Hook %r failed: %s", hook, exc)
