"""Virtual cameras and training pair shards (``mvtools augment``); see docs/augment.md."""
from mvtools.augment.pipeline import augment

__all__ = ["augment"]
