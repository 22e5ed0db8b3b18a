"""The frame loop: source, detector, classifier, events and heartbeats."""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from edge_agent.camera import Frame, FrameSource, open_source
from edge_agent.classifier import Classifier, Verdict
from edge_agent.config import AgentConfig
from edge_agent.face_detector import Face, FaceDetector, open_detector
from edge_agent.heartbeat import Stats, utc_now
from edge_agent.labels import COMPLIANT
from edge_agent.publisher import Publisher

log = logging.getLogger(__name__)


@dataclass
class Summary:
    """What a run did, printed when a finite source ends."""

    frames: int
    faces: int
    small_faces: int
    verdicts: dict[str, int]
    events_published: int
    events_unacknowledged: int
    fps: float
    classifier_latency_ms: float

    def lines(self) -> list[str]:
        per_verdict = ", ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items()))
        return [
            f"frames: {self.frames}  ({self.fps:.1f} fps)",
            f"faces classified: {self.faces}  (too small: {self.small_faces})",
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
            source_uri or config.source.uri,
            config.source.folder_fps,
            config.source.loop,
        )
        self.publisher = Publisher(config, self.model_info)

    def request_stop(self, signum: int = 0, frame: FrameType | None = None) -> None:
        log.info("Stop requested (signal %d)", signum)
        self._stop.set()

    def run(self, max_frames: int | None = None) -> Summary:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        log.info("Reading frames from %s", self.source.description)
        self.publisher.start()
        next_heartbeat = time.monotonic()
        self.stats.camera_state = "ok"
        try:
            for frame in self.source.frames():
                self._process(frame)
                self.stats.frame_done()
                if time.monotonic() >= next_heartbeat:
                    self._heartbeat()
                    next_heartbeat = time.monotonic() + self.config.heartbeat.interval_s
                if self._stop.is_set() or (
                    max_frames and self.stats.frames >= max_frames
                ):
                    break
        finally:
            self.source.close()
            self.stats.camera_state = "stopped"
            self._heartbeat()
            self.publisher.stop()
        return self._summary()

    def _process(self, frame: Frame) -> None:
        faces = self.detector.detect(frame.image)
        log.debug("Frame %d: %d faces", frame.index, len(faces))
        for face in faces:
            if face.size < self.config.detector.min_face_px:
                self.stats.small_faces += 1
                continue
            verdict = self.classifier.classify(frame.image, face.box)
            self.stats.classified(verdict.label, self.classifier.last_latency_ms)
            event = self._event(frame, face, verdict)
            self.publisher.publish_event(event)
            log.info(
                "Event %s: %s (%.2f) at %s in frame %s",
                event["id"][:8],
                verdict.label,
                verdict.confidence,
                list(face.box),
                frame.name or frame.index,
            )

    def _event(self, frame: Frame, face: Face, verdict: Verdict) -> dict[str, Any]:
        where: dict[str, Any] = {"index": frame.index}
        if frame.name is not None:
            where["file"] = frame.name
        return {
            "id": str(uuid.uuid4()),
            "device": self.config.device_id,
            "time": utc_now(),
            "verdict": verdict.label,
            "compliant": COMPLIANT[verdict.label],
            "confidence": round(verdict.confidence, 4),
            "scores": dict(zip(self.classifier.labels, verdict.scores, strict=True)),
            "box": list(face.box),
            "face_px": face.size,
            "frame": where,
            "model": {
                "version": self.model_info["version"],
                "sha256": self.model_info["sha256"],
            },
        }

    def _heartbeat(self) -> None:
        self.publisher.publish_heartbeat(
            self.stats.heartbeat(
                self.config.device_id,
                self.model_info["version"],
                self.publisher.events_published,
            )
        )

    def _summary(self) -> Summary:
        return Summary(
            frames=self.stats.frames,
            faces=self.stats.faces,
            small_faces=self.stats.small_faces,
            verdicts=dict(self.stats.verdicts),
            events_published=self.publisher.events_published,
            events_unacknowledged=self.publisher.unacknowledged(),
            fps=self.stats.overall_fps(),
            classifier_latency_ms=self.stats.latency_ms(),
        )
