"""Virtual cameras and training pair shards (``mvtools augment``); see docs/augment.md.

``augment`` is imported lazily, so readers of the pair-shard format (:mod:`mvtools.augment.pairs`, e.g. the
trainer) do not import the augmentation pipeline.
"""

from __future__ import annotations

__all__ = ["augment"]


def __getattr__(name):
    if name == "augment":
        from mvtools.augment.pipeline import augment

        return augment
    raise AttributeError(f"module 'mvtools.augment' has no attribute {name!r}")
