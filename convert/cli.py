"""``edge-convert``: train, quantise, evaluate and package the mask classifier."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from convert import dataset, evaluate, package, quantize
from convert.train import TrainSettings, train
from edge_agent.classifier import Classifier
from edge_agent.crop import CropRule
from edge_agent.errors import AgentError
from edge_agent.face_detector import YuNetDetector
from edge_agent.labels import LABELS

log = logging.getLogger(__name__)

MAX_INT8_DROP = 0.02  # int8 macro-F1 may trail float by at most two points
MODEL_NAME = "mask-classifier"


class ConvertError(AgentError):
    """A conversion that cannot go on, or a model that fails its quality gate."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.run(args)
    except (AgentError, ValueError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"edge-convert: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-convert", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    packaging = _packaging_options()
    _add_train(
        commands.add_parser(
            "train", parents=[packaging], help="train on labelled scenes and package"
        )
    )
    _add_import(
        commands.add_parser(
            "import", parents=[packaging], help="quantise and package your Keras model"
        )
    )
    return parser


def _packaging_options() -> argparse.ArgumentParser:
    """Options both commands share: where the package goes and its quality gate."""
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--version", default=None, help="model version for the manifest (default: date)"
    )
    shared.add_argument(
        "--margin",
        type=float,
        default=0.15,
        help="crop margin on each side of the face box",
    )
    shared.add_argument(
        "--max-int8-drop",
        type=float,
        default=MAX_INT8_DROP,
        help="refuse to publish when int8 macro-F1 trails float by more than "
        "this fraction (default 0.02: two points)",
    )
    return shared


def _add_train(fit: argparse.ArgumentParser) -> None:
    fit.add_argument(
        "--data",
        type=Path,
        required=True,
        help="dataset root with images/, annotations/, splits/",
    )
    fit.add_argument(
        "--out",
        type=Path,
        default=Path("models") / MODEL_NAME,
        help="folder to write model.tflite and manifest.json to",
    )
    fit.add_argument(
        "--detector-model",
        type=Path,
        help="YuNet .onnx: also train on detector-cut crops",
    )
    fit.add_argument("--size", type=int, default=64, help="crop side in pixels")
    fit.add_argument(
        "--epochs",
        type=int,
        default=TrainSettings.epochs,
        help=f"training epochs (default {TrainSettings.epochs})",
    )
    fit.add_argument("--limit-scenes", type=int, help="use only the first N scenes")
    fit.add_argument(
        "--min-face",
        type=int,
        default=20,
        help="smallest face side scored in the end-to-end evaluation",
    )
    fit.set_defaults(run=_train_command)


def _add_import(own: argparse.ArgumentParser) -> None:
    own.add_argument("model", type=Path, help=".keras, or legacy Keras 2 .h5/.model")
    own.add_argument(
        "--calibration",
        type=Path,
        required=True,
        help="folder of face crop images for int8 calibration",
    )
    own.add_argument(
        "--labels",
        required=True,
        help="comma-separated labels in the model's output order",
    )
    own.add_argument(
        "--scale",
        choices=sorted(quantize.PIXEL_SCALES),
        default="symmetric",
        help="how the model expects its pixels",
    )
    own.add_argument(
        "--channels",
        choices=("RGB", "BGR"),
        default="RGB",
        help="channel order the model was trained on (default RGB)",
    )
    own.add_argument(
        "--data", type=Path, help="dataset root to evaluate on (val split)"
    )
    own.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder to write model.tflite and manifest.json to",
    )
    own.set_defaults(run=_import_command)


def _train_command(args: argparse.Namespace) -> None:
    started = time.monotonic()
    rule = CropRule(margin=args.margin, size=args.size)
    train_scenes = dataset.load_split(args.data, "train", args.limit_scenes)
    val_scenes = dataset.load_split(args.data, "val", args.limit_scenes)
    crops, labels = dataset.crops_array(train_scenes, rule)
    sources = {"annotated_boxes": _per_class(labels)}
    detector = None
    if args.detector_model is not None:
        detector = YuNetDetector(args.detector_model, score_threshold=0.5)
        more, more_labels = dataset.detector_crops(
            train_scenes, detector, rule, min_iou=0.4
        )
        sources["detector_boxes"] = _per_class(more_labels)
        crops = np.concatenate([crops, more])
        labels = np.concatenate([labels, more_labels])
    settings = TrainSettings(epochs=args.epochs)
    model = train(crops, labels, len(LABELS), settings)

    training = {
        "dataset": "larxel-face-mask (CC0 1.0), PASCAL VOC boxes",
        "split": "train",
        "scenes": len(train_scenes),
        "crops": sources,
        "settings": settings.__dict__,
        "from_scratch": True,
    }
    _package(args, model, crops, rule, LABELS, training, val_scenes, detector)
    log.info("Done in %.1f min", (time.monotonic() - started) / 60)


def _import_command(args: argparse.Namespace) -> None:
    labels = tuple(name.strip() for name in args.labels.split(","))
    unknown = [name for name in labels if name not in LABELS]
    if unknown or len(set(labels)) != len(labels) or len(labels) < 2:
        raise ConvertError(
            f"--labels {args.labels!r}: give two or three distinct names from "
            f"{', '.join(LABELS)} in the model's output order"
        )
    user_model, keras = quantize.load_keras_model(args.model)
    shape = tuple(user_model.inputs[0].shape[1:])
    if len(shape) != 3 or shape[0] != shape[1] or shape[2] != 3:
        raise ConvertError(f"{args.model} takes input {shape}; need square RGB images")
    outputs = int(user_model.outputs[0].shape[-1])
    if outputs != len(labels):
        raise ConvertError(
            f"{args.model} has {outputs} outputs but --labels names {len(labels)}"
        )
    rule = CropRule(margin=args.margin, size=int(shape[0]), channels=args.channels)
    model = quantize.with_pixel_scaling(user_model, keras, args.scale)
    calibration = _read_crops(args.calibration, rule)
    val = dataset.load_split(args.data, "val") if args.data else []
    training = {
        "imported_from": args.model.name,
        "pixel_scaling": args.scale,
        "calibration_crops": len(calibration),
    }
    _package(args, model, calibration, rule, labels, training, val, None)


def _package(
    args: argparse.Namespace,
    model: Any,
    representative: np.ndarray,
    rule: CropRule,
    labels: tuple[str, ...],
    training: dict[str, Any],
    val_scenes: list[dataset.Scene],
    detector: YuNetDetector | None,
) -> None:
    """Quantise, evaluate and package into a staging folder; publish if it passes."""
    version = args.version or datetime.now(UTC).strftime("%Y.%m.%d.%H%M")
    staging = args.out.with_name(f".{args.out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    rng = np.random.default_rng(0)
    sample = representative[rng.permutation(len(representative))[:400]]
    package.write_model(staging, quantize.to_int8(model, sample))
    package.write_manifest(
        staging,
        name=MODEL_NAME,
        version=version,
        labels=labels,
        rule=rule,
        metrics={},
        training=training,
    )

    metrics = _evaluate(
        model, Classifier(staging), val_scenes, detector, rule, labels, args
    )
    package.write_manifest(
        staging,
        name=MODEL_NAME,
        version=version,
        labels=labels,
        rule=rule,
        metrics=metrics,
        training=training,
    )
    drop = metrics.get("val_crops", {}).get("macro_f1_drop", 0.0)
    if drop > args.max_int8_drop:
        raise ConvertError(
            f"int8 macro-F1 is {drop:.3f} below float (limit {args.max_int8_drop}); "
            f"the model stays in {staging} and was not published"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    for name in (package.MODEL_FILE, "manifest.json"):
        (staging / name).replace(args.out / name)
    shutil.rmtree(staging, ignore_errors=True)
    log.info("Published %s", args.out)


def _evaluate(
    model: Any,
    classifier: Classifier,
    val_scenes: list[dataset.Scene],
    detector: YuNetDetector | None,
    rule: CropRule,
    labels: tuple[str, ...],
    args: argparse.Namespace,
) -> dict[str, Any]:
    if not val_scenes:
        log.warning(
            "No labelled data to evaluate on (--data): the manifest has no "
            "metrics and the int8 quality gate checks nothing"
        )
        return {}
    crops, truth = dataset.crops_array(val_scenes, rule)
    order = [labels.index(LABELS[t]) if LABELS[t] in labels else -1 for t in truth]
    keep = np.asarray(order) >= 0
    truth_idx = np.asarray(order)[keep]
    report = evaluate.compare(
        truth_idx,
        evaluate.float_scores(model, crops[keep]),
        evaluate.int8_scores(classifier, crops[keep]),
        labels,
    )
    metrics: dict[str, Any] = {"val_crops": report}
    log.info(
        "Val crops: float macro-F1 %.3f, int8 %.3f, agreement %.3f",
        report["float"]["macro_f1"],
        report["int8"]["macro_f1"],
        report["agreement"],
    )
    if detector is not None:
        scenes = evaluate.end_to_end(
            val_scenes, detector, classifier, getattr(args, "min_face", 20)
        )
        metrics["val_scenes_end_to_end"] = scenes
        log.info(
            "Val scenes end to end: detector recall %.3f, int8 macro-F1 %.3f",
            scenes["detector_recall_at_least_min"],
            scenes["classification"]["macro_f1"],
        )
    return metrics


def _read_crops(folder: Path, rule: CropRule) -> np.ndarray:
    paths = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp"}
    )
    # Calibration images are face crops already: resize them, add no margin.
    whole = CropRule(margin=0.0, size=rule.size, channels=rule.channels)
    crops = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("Skipping unreadable calibration image %s", path)
            continue
        height, width = image.shape[:2]
        crops.append(whole.cut(image, (0, 0, width, height)))
    if not crops:
        raise ConvertError(f"calibration folder {folder} holds no readable images")
    return np.stack(crops)


def _per_class(labels: np.ndarray) -> dict[str, int]:
    counts = np.bincount(labels, minlength=len(LABELS))
    return {label: int(n) for label, n in zip(LABELS, counts, strict=True)}
