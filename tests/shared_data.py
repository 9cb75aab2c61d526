"""Where the tests find ../shared (real CMU BVH files); tests that need it skip with the reason when it is absent."""

import os
from pathlib import Path

import pytest


def cmu_dir() -> Path:
    env = os.environ.get("MVTOOLS_SHARED")
    base = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    return base / "data" / "cmu"


CMU = cmu_dir()
needs_cmu = pytest.mark.skipif(
    not (CMU / "02_01.bvh").exists(), reason=f"CMU BVH files not found at {CMU} (set MVTOOLS_SHARED)"
)
