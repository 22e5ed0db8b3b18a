"""Print the agent's frame rate and memory on the val replay, and a float baseline.

The baseline is the usual one-file demo: the same detector, then a float Keras
MobileNetV2 at 224 px called with ``model.predict`` for each face.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_agent.config import AgentConfig  # noqa: E402

SHARED = Path(os.environ.get("MASK_EDGE_SHARED", ROOT.parent / "shared")).resolve()
DATASET = SHARED / "data" / "larxel-face-mask"
YUNET = (
    SHARED / "models" / "face-detectors" / "yunet" / "face_detection_yunet_2023mar.onnx"
)


def val_folder(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in (DATASET / "splits" / "val.txt").read_text().split():
        link = target / f"{name}.png"
        if not link.exists():
            link.symlink_to((DATASET / "images" / f"{name}.png").resolve())
    return target


def run_agent(scenes: Path, work: Path) -> float:
    port = 18830 + os.getpid() % 1000
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    broker = None
    if shutil.which("mosquitto"):
        broker = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL
        )
        time.sleep(0.3)
    config = work / "agent.yaml"
    settings: dict[str, object] = {
        "log_level": "WARNING",
        "detector": {"model": str(YUNET)},
        "classifier": {"model_dir": str(ROOT / "models" / "mask-classifier")},
        "source": {"folder_fps": 0},
        "mqtt": {"port": port},
    }
    if hasattr(AgentConfig(), "state_dir"):
        settings["state_dir"] = str(work / "state")
    config.write_text(yaml.safe_dump(settings))
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_agent",
                "run",
                "--config",
                str(config),
                "--source",
                str(scenes),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    finally:
        if broker is not None:
            broker.terminate()
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    fps = float(re.search(r"\(([\d.]+) fps\)", result.stdout).group(1))
    faces = re.search(r"faces classified: (\d+)", result.stdout).group(1)
    print(
        f"agent (YuNet + int8), {len(list(scenes.iterdir()))} val scenes: "
        f"{fps:.1f} fps, {faces} faces classified, peak RSS {peak_mb:.0f} MB"
    )
    return fps


def float_baseline(scenes: Path) -> float:
    import cv2
    import keras
    import numpy as np

    from edge_agent.face_detector import YuNetDetector

    model = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), alpha=1.0, weights=None, classes=2
    )
    detector = YuNetDetector(YUNET)
    paths = sorted(scenes.iterdir())
    start = time.perf_counter()
    faces = 0
    for path in paths:
        frame = cv2.imread(str(path))
        for face in detector.detect(frame):
            if face.size < 24:
                continue
            x, y, w, h = face.box
            crop = cv2.resize(frame[y : y + h, x : x + w], (224, 224))
            batch = crop[np.newaxis].astype("float32") / 127.5 - 1.0
            model.predict(batch, verbose=0)
            faces += 1
    fps = len(paths) / (time.perf_counter() - start)
    print(
        f"usual float Keras pipeline (YuNet + MobileNetV2 224 px, predict per "
        f"face): {fps:.1f} fps, {faces} faces"
    )
    return fps


def main() -> None:
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        scenes = val_folder(work / "scenes")
        fps = run_agent(scenes, work)
        try:
            baseline = float_baseline(scenes)
        except ImportError:
            print("float baseline skipped: TensorFlow is not installed here")
            return
    print(f"speed-up of the agent over the float pipeline: {fps / baseline:.1f}x")


if __name__ == "__main__":
    main()
