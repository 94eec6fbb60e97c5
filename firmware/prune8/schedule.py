# Gradual pruning schedule: Zhu & Gupta's cubic (TensorFlow Model Optimization's
# PolynomialDecay with power 3, begin step 0) in integer basis points
# (docs/spec.md §7.1). Every intermediate is below 2**30.

from . import errors

MAX_STEPS = errors.MAX_STEPS


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _check_bp(bp):
    if not _is_int(bp) or bp < 0 or bp > 10000:
        raise errors.sparsity_bp_value(bp)


def sparsity_at(step, steps, final_bp, initial_bp=0):
    """Sparsity in bp at `step` of `steps`: initial_bp at 0, final_bp at steps."""
    if not _is_int(steps) or steps < 1 or steps > MAX_STEPS:
        raise errors.schedule_steps(steps, MAX_STEPS)
    if not _is_int(step) or step < 0 or step > steps:
        raise errors.schedule_step(step, steps)
    _check_bp(final_bp)  # one call each: a loop over a tuple would allocate the tuple
    _check_bp(initial_bp)
    r = (steps - step) * 10000 // steps
    r3 = (r * r // 10000) * r // 10000
    return final_bp + (initial_bp - final_bp) * r3 // 10000
