"""The classifier network: a small MobileNetV2-style model taking raw pixels."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

# (expansion, channels, repeats, first stride) per stage, as in MobileNetV2.
STAGES = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 3, 2), (4, 64, 2, 2))
BN_MOMENTUM = 0.9  # 0.999 left the moving statistics unusable after short training


def build_network(size: int, classes: int, keras: Any) -> Any:
    """A MobileNetV2-style classifier with pixel scaling inside the graph."""
    layers = keras.layers
    inputs = keras.Input((size, size, 3), name="pixels")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_pixels")(inputs)
    x = _conv_bn(layers, x, 16, 3, 2, "stem")
    for stage, (expansion, channels, repeats, stride) in enumerate(STAGES):
        for index in range(repeats):
            name = f"block{stage}_{index}"
            x = _inverted_residual(
                layers, x, expansion, channels, stride if index == 0 else 1, name
            )
    x = _conv_bn(layers, x, 128, 1, 1, "head")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    outputs = layers.Dense(classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="mask_classifier")


def _conv_bn(
    layers: Any, x: Any, filters: int, kernel: int, stride: int, name: str
) -> Any:
    x = layers.Conv2D(
        filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


def _inverted_residual(
    layers: Any, x: Any, expansion: int, channels: int, stride: int, name: str
) -> Any:
    shortcut = x
    in_channels = int(x.shape[-1])
    if expansion != 1:
        x = _conv_bn(layers, x, in_channels * expansion, 1, 1, f"{name}_expand")
    x = layers.DepthwiseConv2D(
        3, stride, padding="same", use_bias=False, name=f"{name}_dw"
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_project")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_project_bn")(x)
    if stride == 1 and in_channels == channels:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x
