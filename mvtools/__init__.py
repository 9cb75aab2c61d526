"""mvtools: multi-view human pose data toolkit and self-supervised lifting trainer."""

__version__ = "0.1.0"
