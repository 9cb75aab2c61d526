"""Shared pytest fixtures: small synthetic H36M-like datasets built once per test session."""

import pytest


@pytest.fixture(scope="session")
def synth_ds(tmp_path_factory):
    """A small dataset: subjects S1, S5, S9; 2 sequences x 200 frames each; gt + realistic detected 2D; seed 0."""
    from mvtools.synth.dataset import synth_dataset

    return synth_dataset(
        tmp_path_factory.mktemp("synth") / "ds",
        subjects=["S1", "S5", "S9"],
        sequences_per_subject=2,
        frames=200,
        seed=0,
        noise="realistic",
        command="pytest synth_ds",
    )


@pytest.fixture(scope="session")
def synth_ds_clean(tmp_path_factory):
    """Like ``synth_ds`` but without detector noise (poses2d holds ground truth only)."""
    from mvtools.synth.dataset import synth_dataset

    return synth_dataset(
        tmp_path_factory.mktemp("synth_clean") / "ds",
        subjects=["S1", "S5", "S9"],
        sequences_per_subject=2,
        frames=200,
        seed=0,
        noise=None,
        command="pytest synth_ds_clean",
    )
