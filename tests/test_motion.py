"""Procedural motion: anatomy, floor contact, determinism."""
import numpy as np
import pytest

from mvtools import motion
from mvtools.skeleton import H36M32_PARENTS, bone_lengths


@pytest.mark.parametrize("activity", motion.ACTIVITIES)
def test_bone_lengths_constant_and_feet_on_floor(activity):
    rng = np.random.default_rng(3)
    body = motion.random_body(rng)
    X = motion.generate_motion(activity, 150, body, rng)
    assert X.shape == (150, 32, 3)
    bl = bone_lengths(X, H36M32_PARENTS)
    ref = np.linalg.norm(body.offsets[1:], axis=1)
    assert np.allclose(bl, ref[None], rtol=1e-6, atol=1e-6)
    assert X[..., 2].min() > -1e-6
