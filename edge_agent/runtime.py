"""One loader for the TFLite interpreter, whichever runtime is installed."""

from __future__ import annotations

import importlib
import logging
from typing import Any

log = logging.getLogger(__name__)

# Tried in this order: LiteRT is the supported runtime; the others are fallbacks.
# (module, path to the Interpreter class in it, runtime name)
RUNTIMES = (
    ("ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "Interpreter", "tflite-runtime"),
    ("tensorflow", "lite.Interpreter", "tensorflow"),
)

_chosen: tuple[Any, str] | None = None


def interpreter_class() -> tuple[Any, str]:
    """The first importable ``Interpreter`` class and the runtime's name."""
    global _chosen
    if _chosen is not None:
        return _chosen
    for module_name, attribute, runtime in RUNTIMES:
        try:
            found: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in attribute.split("."):
            found = getattr(found, name)
        _chosen = (found, runtime)
        log.info("TFLite runtime: %s", runtime)
        return _chosen
    raise ImportError(
        "no TFLite runtime found: install ai-edge-litert "
        "(or tflite-runtime where it has wheels)"
    )


def load_interpreter(model_path: str, num_threads: int = 1) -> Any:
    """A TFLite interpreter for the model with its tensors allocated."""
    cls, _ = interpreter_class()
    interpreter = cls(model_path=model_path, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def runtime_name() -> str:
    return interpreter_class()[1]
