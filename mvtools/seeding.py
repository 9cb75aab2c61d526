"""Seeded random streams: one generator per (seed, labels), independent of the order in which work is done.

Every command that draws random numbers per subject, sequence, file or camera takes its generator from
:func:`stable_rng`, so a file's noise does not change when other files are added, removed or processed in another
order, and the same seed gives byte-identical output.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream_key(seed: int, *labels: str | int) -> list[int]:
    """The integer entropy of (seed, labels): strings by their CRC-32, integers as they are."""
    return [int(seed)] + [zlib.crc32(x.encode()) if isinstance(x, str) else int(x) for x in labels]


def stable_rng(seed: int, *labels: str | int) -> np.random.Generator:
    """A generator determined by ``seed`` and ``labels`` only (e.g. subject, action, subaction, camera id).

    ``stable_rng(0, "S1", "Walking", 1)`` is ``np.random.default_rng([0, crc32("S1"), crc32("Walking"), 1])``.
    """
    return np.random.default_rng(np.random.SeedSequence(stream_key(seed, *labels)))
