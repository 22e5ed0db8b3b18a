"""The model manifest: what a packaged model promises about itself."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.crop import CropRule
from edge_agent.errors import ModelError
from edge_agent.labels import LABELS

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """The parts of ``manifest.json`` the agent relies on."""

    path: Path
    name: str
    version: str
    model_file: Path
    sha256: str
    labels: tuple[str, ...]
    input_shape: tuple[int, ...]
    input_dtype: str
    crop: CropRule
    raw: dict[str, Any]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(model_dir: Path) -> Manifest:
    """Read and check a model folder's manifest; refuse anything inconsistent."""
    path = model_dir / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(f"model manifest {path} does not exist")
    try:
        raw = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"model manifest {path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelError(f"model manifest {path} must be a JSON object")
    try:
        model_file = model_dir / raw.get("file", "model.tflite")
        inp = raw["input"]
        manifest = Manifest(
            path=path,
            name=str(raw["name"]),
            version=str(raw["version"]),
            model_file=model_file,
            sha256=str(raw["sha256"]),
            labels=tuple(raw["labels"]),
            input_shape=tuple(int(n) for n in inp["shape"]),
            input_dtype=str(inp["dtype"]),
            crop=CropRule.from_manifest(raw["crop"]),
            raw=raw,
        )
    except KeyError as exc:
        raise ModelError(f"model manifest {path} lacks the key {exc}") from exc
    except (ValueError, TypeError, AttributeError) as exc:
        raise ModelError(f"model manifest {path} has a malformed value: {exc}") from exc
    labels = manifest.labels
    if len(set(labels)) != len(labels) or len(labels) < 2 or set(labels) - set(LABELS):
        raise ModelError(
            f"model manifest {path} lists labels {list(labels)}; expected two or "
            f"three distinct labels from {list(LABELS)}"
        )
    return manifest


def verify_file(manifest: Manifest) -> None:
    """Refuse a model file that is missing or differs from its manifest's sha256."""
    if not manifest.model_file.is_file():
        raise ModelError(f"model file {manifest.model_file} does not exist")
    actual = sha256_of(manifest.model_file)
    if actual != manifest.sha256:
        size = manifest.model_file.stat().st_size
        raise ModelError(
            f"model file {manifest.model_file} ({size} bytes) has sha256 "
            f"{actual[:12]}..., but {manifest.path.name} says "
            f"{manifest.sha256[:12]}...: "
            "the file is truncated, corrupt or not the packaged model"
        )
