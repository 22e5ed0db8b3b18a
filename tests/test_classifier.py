"""The shipped model loads, keeps its contract, and bad models are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATASET, MODEL_DIR

from convert.dataset import load_split
from edge_agent.classifier import Classifier
from edge_agent.errors import ModelError
from edge_agent.manifest import read_manifest, sha256_of


def copy_model(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(MODEL_DIR, target)
    return target


def test_shipped_manifest_matches_its_model() -> None:
    manifest = read_manifest(MODEL_DIR)
    assert manifest.labels == ("with_mask", "mask_incorrect", "without_mask")
    assert sha256_of(manifest.model_file) == manifest.sha256
    assert manifest.input_dtype in ("uint8", "int8")
    metrics = manifest.raw["metrics"]["val_crops"]
    assert metrics["int8"]["macro_f1"] >= metrics["float"]["macro_f1"] - 0.02


def test_classifies_real_annotated_faces() -> None:
    classifier = Classifier(MODEL_DIR)
    scenes = load_split(DATASET, "val")
    right = total = 0
    for scene in scenes[:40]:
        frame = scene.read()
        for face in scene.faces:
            if min(face.box[2:]) < 32:
                continue
            verdict = classifier.classify(frame, face.box)
            assert 0.0 <= verdict.confidence <= 1.0
            assert abs(sum(verdict.scores) - 1.0) < 0.05
            right += verdict.label == face.label
            total += 1
    assert total >= 30
    assert right / total >= 0.85


def test_truncated_model_is_refused_with_its_name(tmp_path: Path) -> None:
    model_dir = copy_model(tmp_path)
    path = model_dir / "model.tflite"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ModelError) as caught:
        Classifier(model_dir)
    assert str(path) in str(caught.value)
    assert "truncated" in str(caught.value)


def test_truncated_model_matching_its_manifest_is_refused(tmp_path: Path) -> None:
    model_dir = copy_model(tmp_path)
    path = model_dir / "model.tflite"
    path.write_bytes(path.read_bytes()[:5000])
    _rewrite_manifest(model_dir, sha256=sha256_of(path))
    with pytest.raises(ModelError, match="cannot be loaded"):
        Classifier(model_dir)


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    model_dir = copy_model(tmp_path)
    (model_dir / "model.tflite").unlink()
    with pytest.raises(ModelError, match=r"model\.tflite does not exist"):
        Classifier(model_dir)


def test_missing_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"manifest\.json does not exist"):
        Classifier(tmp_path)


def test_wrong_input_shape_is_refused(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    from convert.quantize import to_int8

    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    sample = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), np.uint8)
    model_dir = copy_model(tmp_path)
    path = model_dir / "model.tflite"
    path.write_bytes(to_int8(model, sample))
    _rewrite_manifest(model_dir, sha256=sha256_of(path))
    with pytest.raises(ModelError) as caught:
        Classifier(model_dir)
    assert "takes input [1, 32, 32, 3]" in str(caught.value)
    assert "[1, 64, 64, 3]" in str(caught.value)


def test_unknown_label_in_manifest_is_refused(tmp_path: Path) -> None:
    model_dir = copy_model(tmp_path)
    _rewrite_manifest(model_dir, labels=["with_mask", "helmet", "without_mask"])
    with pytest.raises(ModelError, match="helmet"):
        Classifier(model_dir)


def test_crop_rule_pads_faces_at_the_frame_edge() -> None:
    classifier = Classifier(MODEL_DIR)
    frame = np.full((100, 100, 3), 200, np.uint8)
    crop = classifier.crop_rule.cut(frame, (-10, 90, 30, 30))
    assert crop.shape == (64, 64, 3)
    assert int(crop.min()) == 200
    resized = cv2.resize(frame, (64, 64))
    assert resized.shape == crop.shape


def _rewrite_manifest(model_dir: Path, **changes: object) -> None:
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2]", "must be a JSON object"),
        ('{"name": "x"', "is not valid JSON"),
        ('{"name": "x", "version": "1"}', "lacks the key 'input'"),
    ],
)
def test_malformed_manifest_is_refused_plainly(
    tmp_path: Path, text: str, problem: str
) -> None:
    model_dir = copy_model(tmp_path)
    (model_dir / "manifest.json").write_text(text)
    with pytest.raises(ModelError, match=problem):
        Classifier(model_dir)
