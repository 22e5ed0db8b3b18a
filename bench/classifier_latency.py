"""Print the int8 classifier's invoke latency per face crop (1 thread)."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convert.dataset import crops_array, load_split  # noqa: E402
from edge_agent.classifier import Classifier  # noqa: E402
from edge_agent.runtime import runtime_name  # noqa: E402

SHARED = Path(os.environ.get("MASK_EDGE_SHARED", ROOT.parent / "shared")).resolve()


def main() -> None:
    classifier = Classifier(ROOT / "models" / "mask-classifier", num_threads=1)
    scenes = load_split(SHARED / "data" / "larxel-face-mask", "val")
    crops, _ = crops_array(scenes, classifier.crop_rule)
    for crop in crops[:50]:
        classifier.scores(crop)
    timings = []
    for _ in range(5):
        for crop in crops:
            start = time.perf_counter()
            classifier.scores(crop)
            timings.append((time.perf_counter() - start) * 1000.0)
    timings.sort()
    print(
        f"runtime: {runtime_name()}, model {classifier.model_version}, "
        f"input {classifier.crop_rule.size} px, 1 thread"
    )
    print(
        f"int8 invoke per crop over {len(timings)} calls: median "
        f"{statistics.median(timings):.3f} ms, p95 "
        f"{timings[int(len(timings) * 0.95)]:.3f} ms"
    )


if __name__ == "__main__":
    main()
