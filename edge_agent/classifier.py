"""The mask classifier: the int8 TFLite model, checked against its manifest."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.crop import Box, CropRule
from edge_agent.errors import ModelError
from edge_agent.manifest import Manifest, read_manifest, verify_file
from edge_agent.runtime import load_interpreter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """The classifier's answer for one crop."""

    label: str
    confidence: float
    scores: tuple[float, ...]


class Classifier:
    """Runs the packaged model on face crops cut with the manifest's crop rule."""

    def __init__(self, model_dir: Path, num_threads: int = 1) -> None:
        self.manifest: Manifest = read_manifest(model_dir)
        verify_file(self.manifest)
        path = self.manifest.model_file
        try:
            self._interp = load_interpreter(str(path), num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"model file {path} cannot be loaded: {exc}") from exc
        self._input = self._interp.get_input_details()[0]
        self._output = self._interp.get_output_details()[0]
        self._check_contract()
        scale, zero = self._input["quantization"]
        self._in_scale = (float(scale) or 1.0, int(zero))
        self.crop_rule: CropRule = self.manifest.crop
        self.labels = self.manifest.labels
        self.last_latency_ms = 0.0
        log.info(
            "Classifier %s %s loaded (%s, input %s %s)",
            self.manifest.name,
            self.manifest.version,
            path.name,
            [int(n) for n in self._input["shape"]],
            np.dtype(self._input["dtype"]).name,
        )

    def _check_contract(self) -> None:
        path = self.manifest.model_file
        shape = tuple(int(n) for n in self._input["shape"])
        dtype = np.dtype(self._input["dtype"]).name
        size = self.manifest.crop.size
        if shape != self.manifest.input_shape or shape != (1, size, size, 3):
            raise ModelError(
                f"model file {path} takes input {list(shape)}, but its manifest "
                f"promises {list(self.manifest.input_shape)} for {size} px crops"
            )
        if dtype != self.manifest.input_dtype or dtype not in ("uint8", "int8"):
            raise ModelError(
                f"model file {path} takes {dtype} input; the agent needs the "
                f"uint8 or int8 input its manifest names ({self.manifest.input_dtype})"
            )
        out_shape = tuple(int(n) for n in self._output["shape"])
        labels = list(self.manifest.labels)
        if out_shape != (1, len(labels)):
            raise ModelError(
                f"model file {path} gives output {list(out_shape)}; expected "
                f"[1, {len(labels)}] for labels {labels}"
            )

    def _quantise(self, pixels: np.ndarray) -> np.ndarray:
        scale, zero = self._in_scale
        info = np.iinfo(self._input["dtype"])
        values = np.rint(pixels.astype(np.float32) / scale) + zero
        return np.clip(values, info.min, info.max).astype(self._input["dtype"])

    @property
    def model_version(self) -> str:
        return self.manifest.version

    @property
    def sha256(self) -> str:
        return self.manifest.sha256

    def scores(self, crop: np.ndarray) -> np.ndarray:
        """Class probabilities for one crop of the rule's size."""
        tensor = crop[np.newaxis]
        if self._in_scale != (1.0, 0) or self._input["dtype"] != np.uint8:
            tensor = self._quantise(tensor)
        self._interp.set_tensor(self._input["index"], tensor)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._output["index"])[0]
        scale, zero = self._output["quantization"]
        if scale:
            return (raw.astype(np.float32) - zero) * scale
        return raw.astype(np.float32)

    def classify(self, frame: np.ndarray, box: Box) -> Verdict:
        """Cut one face from the frame with the crop rule and classify it."""
        return self.classify_crop(self.crop_rule.cut(frame, box))

    def classify_crop(self, crop: np.ndarray) -> Verdict:
        """Classify a face already cut with ``crop_rule``."""
        start = time.perf_counter()
        probs = self.scores(crop)
        self.last_latency_ms = (time.perf_counter() - start) * 1000.0
        best = int(np.argmax(probs))
        return Verdict(
            label=self.labels[best],
            confidence=float(probs[best]),
            scores=tuple(round(float(p), 4) for p in probs),
        )
