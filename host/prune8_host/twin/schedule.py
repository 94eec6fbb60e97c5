"""The gradual pruning schedule (docs/spec.md §7.1): the board's own
prune8.schedule.sparsity_at, which the twin does not re-implement (it is not an oracle
here: host and board must walk the same steps), with NumPy integers accepted."""

from __future__ import annotations

from prune8 import schedule

from . import check

MAX_STEPS = schedule.MAX_STEPS


def sparsity_at(step, steps, final_bp, initial_bp=0) -> int:
    """Zhu & Gupta's cubic schedule in integer basis points (board-identical)."""
    step, steps, final_bp, initial_bp = (int(x) if check.is_int(x) else x
                                         for x in (step, steps, final_bp, initial_bp))
    return schedule.sparsity_at(step, steps, final_bp, initial_bp)
