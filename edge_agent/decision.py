"""Decisions: a track's per-frame votes become one verdict for the person.

Each frame a tracked face casts a vote: its class, or ``unknown`` when the face
is too small, too blurred or the classifier too unsure. A decision needs
``min_frames`` votes for one class making at least ``agreement`` of the known
votes among the latest ``window`` ones. ``unknown`` votes never count for a
class, so doubt can delay a decision but never make anyone non-compliant.
After a decision the track votes afresh: when the new votes agree on another
class by the same rule (a mask pulled up or down) a new decision supersedes it.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from edge_agent.classifier import Classifier, Verdict
from edge_agent.face_detector import Face
from edge_agent.frame_quality import sharpness

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
SMALL, BLURRED, UNCERTAIN = "small", "blurred", "uncertain"


@dataclass(frozen=True)
class Vote:
    """One face's say in one frame; ``doubt`` tells why it is ``unknown``."""

    label: str
    confidence: float = 0.0
    doubt: str | None = None
    verdict: Verdict | None = None  # the classifier's answer, when it was asked


@dataclass(frozen=True)
class DecisionRule:
    """How many recent votes, and what share of them, must agree on a class."""

    min_frames: int = 5
    agreement: float = 0.7
    window: int = 10

    def winner(self, votes: list[Vote]) -> str | None:
        """The class the votes decide on, or None while they do not."""
        known = Counter(vote.label for vote in votes if vote.label != UNKNOWN)
        if not known:
            return None
        label, count = known.most_common(1)[0]
        if count >= self.min_frames and count >= self.agreement * sum(known.values()):
            return label
        return None


# A still photo is its own scene with a single frame: one sure vote decides.
STILL_RULE = DecisionRule(min_frames=1, agreement=1.0, window=1)


@dataclass(frozen=True)
class Decision:
    """A verdict for one track, with the votes it rests on."""

    track: int
    event_id: str
    verdict: str
    confidence: float  # mean confidence of the agreeing votes
    votes: dict[str, int]  # per class and unknown, over the votes looked at
    frames_used: int
    supersedes: str | None  # the event id of the decision this one replaces


class Voter:
    """Turns one face in one frame into a vote; doubtful faces vote unknown."""

    def __init__(
        self,
        classifier: Classifier,
        min_face_px: int,
        min_sharpness: float,
        min_confidence: float,
    ) -> None:
        self.classifier = classifier
        self.min_face_px = min_face_px
        self.min_sharpness = min_sharpness
        self.min_confidence = min_confidence

    def vote(self, image: np.ndarray, face: Face) -> Vote:
        if face.size < self.min_face_px:
            return Vote(UNKNOWN, doubt=SMALL)
        # Sharpness is measured on the crop the model sees, at the model's size.
        crop = self.classifier.crop_rule.cut(image, face.box)
        if sharpness(crop) < self.min_sharpness:
            return Vote(UNKNOWN, doubt=BLURRED)
        verdict = self.classifier.classify_crop(crop)
        if verdict.confidence < self.min_confidence:
            return Vote(UNKNOWN, verdict.confidence, UNCERTAIN, verdict)
        return Vote(verdict.label, verdict.confidence, None, verdict)


class Ballot:
    """The recent votes of one track and the decision they last made."""

    def __init__(self, track: int, rule: DecisionRule, labels: tuple[str, ...]):
        self.track = track
        self.rule = rule
        self.labels = labels
        self.votes: deque[Vote] = deque(maxlen=max(rule.window, rule.min_frames))
        self.verdict: str | None = None
        self.event_id: str | None = None

    def add(self, vote: Vote) -> Decision | None:
        """Count a vote; a decision when it settles or changes the verdict."""
        self.votes.append(vote)
        votes = list(self.votes)
        winner = self.rule.winner(votes)
        if winner is None or winner == self.verdict:
            return None
        agreeing = [v.confidence for v in votes if v.label == winner]
        counts = Counter(v.label for v in votes)
        decision = Decision(
            track=self.track,
            event_id=str(uuid.uuid4()),
            verdict=winner,
            confidence=round(sum(agreeing) / len(agreeing), 4),
            votes={label: counts[label] for label in (*self.labels, UNKNOWN)},
            frames_used=len(votes),
            supersedes=self.event_id,
        )
        self.verdict, self.event_id = winner, decision.event_id
        # Only votes cast after this decision may overturn it.
        self.votes.clear()
        return decision


class Referee:
    """Keeps a ballot per live track and says when one reaches a decision."""

    def __init__(self, rule: DecisionRule, labels: tuple[str, ...]) -> None:
        if rule.window < rule.min_frames:
            log.warning(
                "Decision window of %d frames is shorter than min_frames %d; using %d",
                rule.window,
                rule.min_frames,
                rule.min_frames,
            )
        self.rule = rule
        self.labels = labels
        self._ballots: dict[int, Ballot] = {}

    def vote(
        self, track: int, vote: Vote, rule: DecisionRule | None = None
    ) -> Decision | None:
        """Add a track's vote; ``rule`` replaces the usual rule for a new track."""
        ballot = self._ballots.get(track)
        if ballot is None:
            ballot = Ballot(track, rule or self.rule, self.labels)
            self._ballots[track] = ballot
        return ballot.add(vote)

    def label(self, track: int) -> str:
        """The track's verdict so far, or ``unknown`` before its decision."""
        ballot = self._ballots.get(track)
        if ballot is None or ballot.verdict is None:
            return UNKNOWN
        return ballot.verdict

    def end(self, track: int) -> bool:
        """Forget an ended track; True when it never reached a decision."""
        ballot = self._ballots.pop(track, None)
        return ballot is not None and ballot.verdict is None
