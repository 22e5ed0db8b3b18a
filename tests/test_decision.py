"""Votes become one decision per person; doubtful faces and bad frames never vote."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import DATASET, MODEL_DIR

from convert.dataset import Scene, load_split
from edge_agent.classifier import Classifier
from edge_agent.config import DecisionConfig, FrameQualityConfig
from edge_agent.decision import (
    BLURRED,
    SMALL,
    STILL_RULE,
    UNCERTAIN,
    UNKNOWN,
    Ballot,
    DecisionRule,
    Referee,
    Vote,
    Voter,
)
from edge_agent.face_detector import Face
from edge_agent.frame_quality import BLACK, COVERED, FROZEN, FrameQuality, sharpness
from edge_agent.labels import LABELS

RULE = DecisionRule(min_frames=5, agreement=0.7, window=10)
MASK, NO_MASK = Vote("with_mask", 0.9), Vote("without_mask", 0.9)
DOUBT = Vote(UNKNOWN, 0.3, UNCERTAIN)


def cast(ballot: Ballot, votes: list[Vote]) -> list[object]:
    return [d for d in (ballot.add(v) for v in votes) if d is not None]


@pytest.fixture(scope="module")
def val_scenes() -> list[Scene]:
    return load_split(DATASET, "val")


def large_faces(scenes: list[Scene], count: int) -> list[tuple[Scene, Face]]:
    found = [
        (scene, Face(face.box, 1.0))
        for scene in scenes
        for face in scene.faces
        if min(face.box[2], face.box[3]) >= 48
    ]
    assert len(found) >= count
    return found[:count]


def test_a_decision_needs_enough_agreeing_frames() -> None:
    assert RULE.winner([MASK] * 4) is None
    assert RULE.winner([MASK] * 5) == "with_mask"
    assert RULE.winner([MASK, NO_MASK] * 5) is None
    assert RULE.winner([MASK] * 7 + [NO_MASK] * 3) == "with_mask"
    assert RULE.winner([MASK] * 6 + [NO_MASK] * 3) is None  # 0.67 < 0.7


def test_unknown_votes_neither_count_nor_decide() -> None:
    assert RULE.winner([DOUBT] * 10) is None
    assert RULE.winner([DOUBT] * 5 + [MASK] * 5) == "with_mask"
    ballot = Ballot(1, RULE, LABELS)
    assert cast(ballot, [DOUBT] * 50) == []
    assert ballot.verdict is None


def test_one_decision_while_the_votes_keep_agreeing() -> None:
    ballot = Ballot(7, RULE, LABELS)
    decisions = cast(ballot, [DOUBT, MASK, NO_MASK] + [MASK] * 60)
    assert len(decisions) == 1
    decision = decisions[0]
    assert decision.track == 7
    assert decision.verdict == "with_mask"
    assert decision.supersedes is None
    assert decision.votes == {
        "with_mask": 5,
        "mask_incorrect": 0,
        "without_mask": 1,
        UNKNOWN: 1,
    }
    assert decision.frames_used == 7
    assert decision.confidence == pytest.approx(0.9)


def test_a_mask_pulled_up_supersedes_the_first_decision() -> None:
    ballot = Ballot(3, RULE, LABELS)
    first = cast(ballot, [NO_MASK] * 5)
    assert [d.verdict for d in first] == ["without_mask"]
    # Only votes after the decision count: five fresh ones decide the change.
    changes = [ballot.add(MASK) for _ in range(5)]
    assert changes[:4] == [None] * 4
    change = changes[4]
    assert change is not None and change.verdict == "with_mask"
    assert change.supersedes == first[0].event_id != change.event_id
    assert change.votes["with_mask"] == change.frames_used == 5
    assert cast(ballot, [MASK] * 20) == []


def test_a_flickering_face_is_never_decided() -> None:
    ballot = Ballot(4, RULE, LABELS)
    assert cast(ballot, [MASK, NO_MASK, DOUBT] * 20) == []


def test_a_still_photo_is_decided_by_one_sure_vote() -> None:
    assert STILL_RULE.winner([NO_MASK]) == "without_mask"
    assert STILL_RULE.winner([DOUBT]) is None


def test_referee_counts_tracks_ending_undecided() -> None:
    referee = Referee(RULE, LABELS)
    for _ in range(5):
        referee.vote(1, MASK)
        referee.vote(2, DOUBT)
    assert referee.label(1) == "with_mask"
    assert referee.label(2) == UNKNOWN
    assert referee.end(1) is False
    assert referee.end(2) is True
    assert referee.vote(5, NO_MASK, STILL_RULE) is not None


def test_voter_doubts_small_blurred_and_uncertain_faces(
    val_scenes: list[Scene],
) -> None:
    classifier = Classifier(MODEL_DIR)
    sure = Voter(classifier, min_face_px=24, min_sharpness=25.0, min_confidence=0.0)
    unsure = Voter(classifier, min_face_px=24, min_sharpness=25.0, min_confidence=1.0)
    picky = Voter(classifier, min_face_px=400, min_sharpness=25.0, min_confidence=0)
    for scene, face in large_faces(val_scenes, 12):
        frame = scene.read()
        vote = sure.vote(frame, face)
        assert vote.label in LABELS and vote.verdict is not None
        assert vote.label == vote.verdict.label
        doubt = unsure.vote(frame, face)
        assert (doubt.label, doubt.doubt) == (UNKNOWN, UNCERTAIN)
        assert picky.vote(frame, face).doubt == SMALL
        kernel = max(face.box[2], face.box[3]) // 3
        smeared = cv2.blur(frame, (kernel, kernel))
        assert sure.vote(smeared, face).doubt == BLURRED


def test_sharpness_tells_a_smeared_face_from_a_clear_one(
    val_scenes: list[Scene],
) -> None:
    threshold = DecisionConfig().min_sharpness
    classifier = Classifier(MODEL_DIR)
    for scene, face in large_faces(val_scenes, 40):
        frame = scene.read()
        crop = classifier.crop_rule.cut(frame, face.box)
        kernel = max(face.box[2], face.box[3]) // 3
        smeared = classifier.crop_rule.cut(cv2.blur(frame, (kernel, kernel)), face.box)
        assert sharpness(crop) >= threshold > sharpness(smeared), scene.name


def quality() -> FrameQuality:
    config = FrameQualityConfig()
    return FrameQuality(config.black_level, config.covered_std, config.frozen_after_s)


def test_black_and_covered_frames_are_refused(val_scenes: list[Scene]) -> None:
    check = quality()
    for number, scene in enumerate(val_scenes):
        frame = scene.read()
        assert check.check(frame, float(number)) is None, scene.name
        dark = (frame * 0.02).astype(np.uint8)
        assert check.check(dark, number + 0.3) == BLACK
        # A finger on the lens: the scene blurred flat, dim and reddish.
        flat = cv2.blur(frame, (151, 151)).astype(np.float32) * 0.08 + 40
        flat[..., 2] += 30
        assert check.check(flat.astype(np.uint8), number + 0.6) == COVERED


def test_a_frame_repeated_for_too_long_is_frozen(val_scenes: list[Scene]) -> None:
    check = quality()
    limit = FrameQualityConfig().frozen_after_s
    frame = val_scenes[0].read()
    times = [0.0, limit / 2, limit - 0.01]
    assert [check.check(frame.copy(), t) for t in times] == [None] * 3
    assert check.check(frame.copy(), limit) == FROZEN
    assert check.check(frame.copy(), limit + 5) == FROZEN
    # A live camera's noise makes every frame differ a little.
    noisy = cv2.add(frame, np.full_like(frame, 1))
    assert check.check(noisy, limit + 5.1) is None
    assert check.check(val_scenes[1].read(), limit + 5.2) is None
