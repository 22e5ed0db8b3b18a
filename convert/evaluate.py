"""Held-out evaluation: float against int8 on crops; detector to verdict on scenes."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from convert.dataset import Scene
from convert.metrics import summarise
from edge_agent.classifier import Classifier
from edge_agent.face_detector import FaceDetector
from edge_agent.geometry import match_boxes
from edge_agent.labels import LABELS

log = logging.getLogger(__name__)

MATCH_IOU = 0.3  # a detection counts as an annotated face at this overlap


def float_scores(model: Any, crops: np.ndarray) -> np.ndarray:
    return np.asarray(
        model.predict(crops.astype(np.float32), batch_size=256, verbose=0)
    )


def int8_scores(classifier: Classifier, crops: np.ndarray) -> np.ndarray:
    return np.stack([classifier.scores(crop) for crop in crops])


def compare(
    truth: np.ndarray,
    float_probs: np.ndarray | None,
    int8_probs: np.ndarray,
    labels: tuple[str, ...],
) -> dict[str, Any]:
    """Metrics of the int8 model, and of the float model beside it when given."""
    int8_pred = int8_probs.argmax(1)
    report: dict[str, Any] = {"int8": summarise(truth, int8_pred, labels)}
    if float_probs is not None:
        float_pred = float_probs.argmax(1)
        report["float"] = summarise(truth, float_pred, labels)
        report["agreement"] = round(float(np.mean(float_pred == int8_pred)), 4)
        report["macro_f1_drop"] = round(
            report["float"]["macro_f1"] - report["int8"]["macro_f1"], 4
        )
    return report


def end_to_end(
    scenes: list[Scene],
    detector: FaceDetector,
    classifier: Classifier,
    min_face: int,
) -> dict[str, Any]:
    """Detector then classifier on whole scenes, scored against the annotations."""
    truth: list[int] = []
    predicted: list[int] = []
    annotated_total = detected_total = matched_total = 0
    eligible_total = 0
    for scene in scenes:
        frame = scene.read()
        faces = [f for f in detector.detect(frame) if f.size >= min_face]
        boxes = [f.box for f in faces]
        annotated = [f.box for f in scene.faces]
        pairs = match_boxes(boxes, annotated, MATCH_IOU)
        annotated_total += len(annotated)
        eligible_total += sum(min(b[2], b[3]) >= min_face for b in annotated)
        detected_total += len(boxes)
        matched_total += len(pairs)
        for ai, di in pairs.items():
            verdict = classifier.classify(frame, boxes[di])
            truth.append(LABELS.index(scene.faces[ai].label))
            predicted.append(classifier.labels.index(verdict.label))
    label_order = tuple(classifier.labels)
    truth_idx = np.asarray([label_order.index(LABELS[t]) for t in truth], np.int64)
    return {
        "scenes": len(scenes),
        "detector": detector.name,
        "min_face_px": min_face,
        "annotated_faces": annotated_total,
        "annotated_faces_at_least_min": eligible_total,
        "detections": detected_total,
        "matched": matched_total,
        "detector_recall_at_least_min": round(
            matched_total / max(1, eligible_total), 4
        ),
        "detector_precision": round(matched_total / max(1, detected_total), 4),
        "classification": summarise(
            truth_idx, np.asarray(predicted, np.int64), label_order
        ),
    }
