"""Packaging: the model file and its manifest, written atomically into a folder."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.crop import CropRule
from edge_agent.manifest import MANIFEST_NAME, sha256_of
from edge_agent.runtime import load_interpreter

log = logging.getLogger(__name__)

MODEL_FILE = "model.tflite"


def write_model(out_dir: Path, flat: bytes) -> Path:
    """Write the TFLite flatbuffer, replacing any earlier one atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_FILE
    _atomic_write(path, flat)
    return path


def tensor_contract(model_path: Path) -> dict[str, Any]:
    """Input and output shape, dtype and quantisation, read from the model itself."""
    interpreter = load_interpreter(str(model_path))

    def describe(detail: dict[str, Any]) -> dict[str, Any]:
        scale, zero = detail["quantization"]
        return {
            "shape": [int(n) for n in detail["shape"]],
            "dtype": detail["dtype"].__name__,
            "quantization": {"scale": float(scale), "zero_point": int(zero)},
        }

    return {
        "input": describe(interpreter.get_input_details()[0]),
        "output": describe(interpreter.get_output_details()[0]),
    }


def write_manifest(
    out_dir: Path,
    *,
    name: str,
    version: str,
    labels: tuple[str, ...],
    rule: CropRule,
    metrics: dict[str, Any],
    training: dict[str, Any],
) -> dict[str, Any]:
    """Describe the packaged model: contract, checksum, metrics and provenance."""
    model_path = out_dir / MODEL_FILE
    contract = tensor_contract(model_path)
    contract["input"]["pixels"] = f"raw 0-255, {rule.channels} channel order"
    manifest = {
        "name": name,
        "version": version,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "file": MODEL_FILE,
        "sha256": sha256_of(model_path),
        "size_bytes": model_path.stat().st_size,
        "labels": list(labels),
        **contract,
        "crop": rule.to_manifest(),
        "metrics": metrics,
        "training": training,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    _atomic_write(out_dir / MANIFEST_NAME, text.encode())
    log.info(
        "Packaged %s %s in %s (sha256 %s)",
        name,
        version,
        out_dir,
        manifest["sha256"][:12],
    )
    return manifest


def _atomic_write(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as stream:
        stream.write(content)
        stream.flush()
        os.fsync(stream.fileno())
    temporary.replace(path)
