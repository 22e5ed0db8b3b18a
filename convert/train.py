"""Training: augmentation, the rare-class remedy and the learning-rate schedule."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from convert.network import build_network

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 3
    rare_repeat: int = 3  # how often crops of the rarest class appear per epoch
    seed: int = 7


def class_weights(labels: np.ndarray, classes: int) -> dict[int, float]:
    """Inverse-square-root frequency weights, normalised to a mean of one."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    weights = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    weights *= classes / weights.sum()
    return {index: float(w) for index, w in enumerate(weights)}


def oversample_rare(
    crops: np.ndarray, labels: np.ndarray, repeat: int
) -> tuple[np.ndarray, np.ndarray]:
    """Repeat the crops of the rarest class so each batch is likely to hold some."""
    rare = int(np.argmin(np.bincount(labels)))
    idx = np.flatnonzero(labels == rare)
    extra = np.tile(idx, max(0, repeat - 1))
    return (
        np.concatenate([crops, crops[extra]]),
        np.concatenate([labels, labels[extra]]),
    )


def _augmenter(keras: Any, seed: int) -> Any:
    layers = keras.layers
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed),
            layers.RandomZoom((-0.15, 0.15), fill_mode="reflect", seed=seed),
            layers.RandomRotation(11.0 / 360.0, fill_mode="reflect", seed=seed),
            layers.RandomBrightness(0.25, value_range=(0, 255), seed=seed),
            layers.RandomContrast(0.25, seed=seed),
        ],
        name="augment",
    )


def train(
    crops: np.ndarray, labels: np.ndarray, classes: int, settings: TrainSettings
) -> Any:
    """Train the network from scratch on uint8 crops; return the Keras model."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(settings.seed)
    size = crops.shape[1]
    weights = class_weights(labels, classes)
    crops, labels = oversample_rare(crops, labels, settings.rare_repeat)
    log.info(
        "Training on %d crops (%s per class), class weights %s",
        len(labels),
        np.bincount(labels, minlength=classes).tolist(),
        {k: round(v, 2) for k, v in weights.items()},
    )

    augment = _augmenter(keras, settings.seed)
    dataset = (
        tf.data.Dataset.from_tensor_slices((crops.astype(np.float32), labels))
        .shuffle(len(labels), seed=settings.seed, reshuffle_each_iteration=True)
        .batch(settings.batch_size)
        .map(
            lambda x, y: (tf.clip_by_value(augment(x, training=True), 0, 255), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
    steps = int(np.ceil(len(labels) / settings.batch_size))
    warmup = steps * settings.warmup_epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=settings.learning_rate / 20,
        decay_steps=max(1, steps * settings.epochs - warmup),
        warmup_target=settings.learning_rate,
        warmup_steps=warmup,
    )
    model = build_network(size, classes, keras)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=settings.weight_decay),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    log.info("Network: %d parameters, %d px input", model.count_params(), size)
    start = time.monotonic()
    model.fit(dataset, epochs=settings.epochs, class_weight=weights, verbose=2)
    log.info("Trained %d epochs in %.0f s", settings.epochs, time.monotonic() - start)
    return model
