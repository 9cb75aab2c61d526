"""Learning-rate schedule as a pure function of the optimiser step (so ``--resume`` is exact by construction).

Per phase: a linear warm-up from lr / w to lr over the first w steps, w = min(``warmup_steps``, a tenth of the
phase's steps); then the pre-training phase stays at ``lr`` and the main phase is multiplied by 0.1 after each
third of its steps (the paper: x0.1 every 100 of 300 epochs), or every ``lr_step`` epochs when given.
"""

from __future__ import annotations

#: the warm-up never takes more than this fraction of a phase
WARMUP_MAX_FRACTION = 0.1
#: ``--batch-size 0``: candidates, largest first, and the optimiser steps an epoch should have at least
AUTO_BATCH_SIZES = (1024, 512, 256, 128, 64)
MIN_STEPS_PER_EPOCH = 128


def batch_size(requested: int, pairs: int) -> int:
    """``requested``, or for 0 the largest of AUTO_BATCH_SIZES with pairs / size >= MIN_STEPS_PER_EPOCH (else
    the smallest)."""
    if requested:
        return requested
    return next((b for b in AUTO_BATCH_SIZES if pairs // b >= MIN_STEPS_PER_EPOCH), AUTO_BATCH_SIZES[-1])


def warmup_length(warmup_steps: int, phase_steps: int) -> int:
    return min(int(warmup_steps), int(phase_steps * WARMUP_MAX_FRACTION))


def learning_rate(cfg, phase: str, step: int, phase_steps: int, steps_per_epoch: int) -> float:
    """The rate of optimiser step ``step`` (0-based, counted within ``phase``) of a phase of ``phase_steps``."""
    w = warmup_length(cfg.warmup_steps, phase_steps)
    rate = cfg.lr * min(1.0, (step + 1) / w) if w else cfg.lr
    if phase != "main":
        return rate
    if cfg.lr_step:
        drops = step // max(1, cfg.lr_step * steps_per_epoch)
    else:
        drops = min(2, 3 * step // max(1, phase_steps))
    return rate * 0.1**drops
