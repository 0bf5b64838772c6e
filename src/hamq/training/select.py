"""Which QAT epoch a run keeps under ``train.select = regularized`` (pure functions).

best_val keeps the most accurate epoch on the validation part; when the regularizer costs
accuracy as it acts, that is its least regularized epoch (a 4-epoch HamQ run on ResNet-20
keeps epoch 0, RESULTS.md). ``regularized`` fixes before training how much validation
accuracy the regularizer may cost: of the epochs within ``tolerance`` of the best one, it
keeps the one with the lowest regularizer term, on a tie the more accurate, then the later.

The trainer keeps each epoch that may still be chosen (its weights in a file) and drops the
others as it goes (``keep_candidates``): an epoch further than ``tolerance`` below the best
so far stays out, since the best can only rise, and an epoch that another is at least as
accurate as and beats is never chosen whatever comes later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_EPS = 1e-12  # accuracies are fractions of whole samples: slack for the subtraction only


@dataclass(frozen=True)
class Candidate:
    """One selectable QAT epoch: its validation accuracy and end-of-epoch regularizer term."""

    epoch: int
    val_accuracy: float
    reg: float

    def rank(self) -> tuple[float, float, int]:
        """Lower is preferred: the regularizer term, then higher accuracy, then later."""
        return (self.reg, -self.val_accuracy, -self.epoch)


def _within(cands: list[Candidate], tolerance: float) -> list[Candidate]:
    best = max(c.val_accuracy for c in cands)
    return [c for c in cands if c.val_accuracy >= best - tolerance - _EPS]


def regularized_choice(candidates: Iterable[Candidate], tolerance: float) -> Candidate:
    """The epoch ``train.select = regularized`` keeps among ``candidates``."""
    cands = list(candidates)
    if not cands:
        raise ValueError("regularized_choice: no candidate epochs")
    if tolerance < 0:
        raise ValueError(f"regularized_choice: tolerance {tolerance} is negative")
    return min(_within(cands, tolerance), key=Candidate.rank)


def keep_candidates(candidates: Iterable[Candidate], tolerance: float) -> list[Candidate]:
    """The candidates that some later epochs could still leave as the choice, in order."""
    cands = list(candidates)
    cands = _within(cands, tolerance) if cands else []
    return [
        c
        for c in cands
        if not any(o.val_accuracy >= c.val_accuracy and o.rank() < c.rank() for o in cands)
    ]
