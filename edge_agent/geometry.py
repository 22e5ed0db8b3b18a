"""Box geometry shared by the tracker and the evaluation: overlap and matching."""

from __future__ import annotations

from edge_agent.crop import Box


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match_boxes(left: list[Box], right: list[Box], min_iou: float) -> dict[int, int]:
    """Greedy one-to-one pairs ``{right index: left index}``, best overlap first."""
    pairs = sorted(
        (
            (iou(lb, rb), li, ri)
            for li, lb in enumerate(left)
            for ri, rb in enumerate(right)
        ),
        reverse=True,
    )
    used: set[int] = set()
    matched: dict[int, int] = {}
    for overlap, li, ri in pairs:
        if overlap < min_iou:
            break
        if li in used or ri in matched:
            continue
        used.add(li)
        matched[ri] = li
    return matched
