"""Full-integer quantisation of a Keras classifier to an int8 TFLite model."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# How a user's model expects its pixels, as (scale, offset) applied to 0..255.
PIXEL_SCALES = {
    "raw": None,  # the model scales pixels itself
    "unit": (1.0 / 255.0, 0.0),
    "symmetric": (1.0 / 127.5, -1.0),  # MobileNetV2's preprocess_input
}


def load_keras_model(path: Path) -> tuple[Any, Any]:
    """Load a ``.keras`` model with Keras 3, or a legacy ``.h5`` with tf_keras."""
    import keras

    if not path.is_file():
        raise ValueError(f"Keras model {path} does not exist")
    try:
        return keras.models.load_model(path, compile=False), keras
    except (ValueError, TypeError, OSError) as exc:
        log.info("Keras 3 cannot load %s (%s); trying legacy tf_keras", path, exc)
    try:
        import tf_keras
    except ImportError as exc:
        raise ValueError(
            f"{path} is not a Keras 3 model and tf_keras is not installed "
            "(pip install --no-deps tf-keras) to read a legacy Keras 2 file"
        ) from exc
    try:
        return tf_keras.models.load_model(path, compile=False), tf_keras
    except (ValueError, TypeError, OSError, ImportError) as exc:
        raise ValueError(
            f"{path} is neither a Keras 3 (.keras) nor a legacy Keras 2 (.h5) "
            f"model: {str(exc).splitlines()[0]}"
        ) from exc


def with_pixel_scaling(model: Any, keras: Any, scaling: str) -> Any:
    """Put the user's pixel scaling in the graph, so the int8 model takes raw pixels."""
    if PIXEL_SCALES[scaling] is None:
        return model
    scale, offset = PIXEL_SCALES[scaling] or (1.0, 0.0)
    shape = tuple(model.inputs[0].shape[1:])
    inputs = keras.Input(shape, name="pixels")
    scaled = keras.layers.Rescaling(scale, offset=offset, name="scale_pixels")(inputs)
    return keras.Model(inputs, model(scaled), name=f"{model.name}_raw_pixels")


def to_int8(model: Any, representative: np.ndarray, io_dtype: str = "uint8") -> bytes:
    """Convert to a fully-integer model calibrated on real crops (raw pixels)."""
    import tensorflow as tf

    def samples() -> Iterator[list[np.ndarray]]:
        for crop in representative:
            yield [crop[np.newaxis].astype(np.float32)]

    with tempfile.TemporaryDirectory() as saved:
        _export_saved_model(model, Path(saved))
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = tf.uint8 if io_dtype == "uint8" else tf.int8
        converter.inference_input_type = dtype
        converter.inference_output_type = dtype
        flat: bytes = converter.convert()
    log.info(
        "Quantised to int8: %d bytes, calibrated on %d crops",
        len(flat),
        len(representative),
    )
    return flat


def _export_saved_model(model: Any, directory: Path) -> None:
    # Keras 3 models export their serving function; tf_keras models save directly.
    if not type(model).__module__.startswith("tf_keras"):
        model.export(str(directory), verbose=False)
    else:
        import tensorflow as tf

        tf.saved_model.save(model, str(directory))
