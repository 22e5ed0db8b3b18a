"""One loader picks the TFLite runtime and says which; all run the shipped model."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
from conftest import MODEL_DIR

from edge_agent import runtime


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_chosen", None)


def test_litert_comes_first(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert runtime.runtime_name() == "ai-edge-litert"
    assert "TFLite runtime: ai-edge-litert" in caplog.text


def test_falls_back_to_tensorflow_and_gives_the_same_scores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("tensorflow", reason="the convert extra is not installed")
    crop = np.random.default_rng(3).integers(0, 255, (1, 64, 64, 3), np.uint8)
    model = str(MODEL_DIR / "model.tflite")

    def scores() -> np.ndarray:
        interpreter = runtime.load_interpreter(model)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], crop)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    litert = scores()
    monkeypatch.setattr(runtime, "_chosen", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    assert runtime.runtime_name() == "tensorflow"
    assert np.array_equal(scores(), litert)


def test_no_runtime_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for module, _, _ in runtime.RUNTIMES:
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match="install ai-edge-litert"):
        runtime.interpreter_class()
