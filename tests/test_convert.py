"""The convert pipeline on a small subset: train, quantise, evaluate, package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATASET, ROOT, YUNET

from convert.dataset import load_split
from edge_agent.classifier import Classifier
from edge_agent.crop import CropRule
from edge_agent.manifest import sha256_of

pytest.importorskip("tensorflow", reason="the convert extra is not installed")


def convert(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convert", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


def test_train_on_a_subset_gives_a_loadable_int8_model(tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = convert(
        "train",
        "--data",
        str(DATASET),
        "--out",
        str(out),
        "--detector-model",
        str(YUNET),
        "--limit-scenes",
        "12",
        "--epochs",
        "1",
        "--version",
        "0.0.1-test",
    )
    assert result.returncode == 0, result.stderr[-3000:]

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == "0.0.1-test"
    assert manifest["labels"] == ["with_mask", "mask_incorrect", "without_mask"]
    assert manifest["input"]["shape"] == [1, 64, 64, 3]
    assert manifest["input"]["dtype"] == "uint8"
    assert manifest["input"]["quantization"] == {"scale": 1.0, "zero_point": 0}
    assert manifest["crop"]["margin"] == 0.15
    assert manifest["sha256"] == sha256_of(out / "model.tflite")
    crops = manifest["metrics"]["val_crops"]
    assert set(crops) >= {"float", "int8", "agreement", "macro_f1_drop"}
    assert crops["int8"]["count"] == sum(map(sum, crops["int8"]["confusion"]))
    scenes = manifest["metrics"]["val_scenes_end_to_end"]
    assert scenes["scenes"] == 12 and scenes["detector"] == "yunet"
    assert manifest["training"]["crops"]["detector_boxes"]
    assert not (tmp_path / ".model.staging").exists()

    classifier = Classifier(out)
    frame = load_split(DATASET, "val", 1)[0].read()
    verdict = classifier.classify(frame, (10, 10, 40, 40))
    assert verdict.label in manifest["labels"]


def _calibration_folder(tmp_path: Path, count: int = 24) -> Path:
    folder = tmp_path / "calibration"
    folder.mkdir()
    rule = CropRule(margin=0.15, size=96)
    written = 0
    for scene in load_split(DATASET, "train", 10):
        frame = scene.read()
        for face in scene.faces:
            cv2.imwrite(
                str(folder / f"crop{written:03d}.png"), rule.cut(frame, face.box)
            )
            written += 1
    assert written >= count
    return folder


def _small_keras_model(path: Path, size: int, outputs: int = 3) -> Path:
    """Save an untrained Keras 3 classifier of the given input size."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.DepthwiseConv2D(3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(outputs, activation="softmax"),
        ]
    )
    model.save(path)
    return path


def test_import_a_keras3_model(tmp_path: Path) -> None:
    path = _small_keras_model(tmp_path / "mine.keras", 48)
    out = tmp_path / "imported"
    result = convert(
        "import",
        str(path),
        "--calibration",
        str(_calibration_folder(tmp_path)),
        "--labels",
        "without_mask,with_mask,mask_incorrect",
        "--scale",
        "unit",
        "--channels",
        "RGB",
        "--out",
        str(out),
        "--data",
        str(DATASET),
        # An untrained model's near-equal scores flip under int8: no quality gate.
        "--max-int8-drop",
        "1.0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labels"] == ["without_mask", "with_mask", "mask_incorrect"]
    assert manifest["input"]["shape"] == [1, 48, 48, 3]
    assert manifest["crop"]["channels"] == "RGB"
    assert manifest["training"]["pixel_scaling"] == "unit"
    crops = manifest["metrics"]["val_crops"]
    assert 0.0 <= crops["agreement"] <= 1.0
    assert crops["int8"]["count"] == crops["float"]["count"] > 300
    Classifier(out)


def test_import_a_legacy_keras2_h5_model(tmp_path: Path) -> None:
    tf_keras = pytest.importorskip("tf_keras")

    base = tf_keras.Sequential(
        [
            tf_keras.Input((64, 64, 3)),
            tf_keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            tf_keras.layers.DepthwiseConv2D(3),
            tf_keras.layers.GlobalAveragePooling2D(),
            tf_keras.layers.Dense(2, activation="softmax"),
        ]
    )
    path = tmp_path / "mask_detector.model"
    base.save(path, save_format="h5")
    out = tmp_path / "imported"
    result = convert(
        "import",
        str(path),
        "--calibration",
        str(_calibration_folder(tmp_path)),
        "--labels",
        "with_mask,without_mask",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labels"] == ["with_mask", "without_mask"]
    assert manifest["training"]["pixel_scaling"] == "symmetric"
    classifier = Classifier(out)
    scores = classifier.scores(np.zeros((64, 64, 3), np.uint8))
    assert scores.shape == (2,)


def test_import_refuses_mismatched_labels(tmp_path: Path) -> None:
    path = _small_keras_model(tmp_path / "three.keras", 32)
    result = convert(
        "import",
        str(path),
        "--calibration",
        str(tmp_path),
        "--labels",
        "with_mask,without_mask",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 1
    assert "has 3 outputs but --labels names 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_quality_gate_refuses_to_publish(tmp_path: Path) -> None:
    path = _small_keras_model(tmp_path / "mine.keras", 32)
    out = tmp_path / "published"
    # A negative limit is stricter than any real drop: the gate must refuse.
    result = convert(
        "import",
        str(path),
        "--calibration",
        str(_calibration_folder(tmp_path)),
        "--labels",
        "with_mask,mask_incorrect,without_mask",
        "--out",
        str(out),
        "--data",
        str(DATASET),
        "--max-int8-drop",
        "-1",
    )
    assert result.returncode == 1
    assert "below float (limit -1.0)" in result.stderr
    assert "was not published" in result.stderr
    assert not (out / "model.tflite").exists()
    assert (tmp_path / ".published.staging" / "manifest.json").is_file()
