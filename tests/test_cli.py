"""The CLI surface: every command loads lazily, and every option of every command explains itself."""

import click
import numpy as np
import pytest
from click.testing import CliRunner

from mvtools.cli.ingest import INGESTERS
from mvtools.cli.main import COMMANDS, cli


def _all_commands():
    ctx = click.Context(cli)
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            sub = click.Context(cmd, parent=ctx)
            for subname in cmd.list_commands(sub):
                yield f"{name} {subname}", cmd.get_command(sub, subname)
        else:
            yield name, cmd


def test_every_command_loads_and_documents_every_option():
    seen = dict(_all_commands())
    for fmt in INGESTERS:
        assert f"ingest {fmt}" in seen
    assert {"synth h36m", "calibrate", "augment", "train", "evaluate", "predict", "demo"} <= set(seen)
    for name, cmd in seen.items():
        assert cmd.help, f"{name} has no help text"
        for p in cmd.params:
            if isinstance(p, click.Option) and p.name != "help":
                assert p.help and len(p.help) > 10, f"{name} {p.opts} has no help text"


@pytest.mark.parametrize("args", [["--help"], ["ingest", "--help"], ["train", "--help"], ["ingest", "h36m", "--help"]])
def test_help_runs(args):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output


def test_unknown_dataset_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(cli, ["augment", str(tmp_path / "nope")])
    assert res.exit_code != 0
    assert "nope" in res.output


def test_synth_dataset_command_writes_a_readable_dataset(tmp_path):
    from mvtools.dataset import joints_to_numpy, read_cameras, read_manifest, read_poses2d, read_poses3d

    out = tmp_path / "ds"
    res = CliRunner().invoke(
        cli,
        ["--quiet", "synth", "dataset", "--out", str(out), "--subjects", "S1,S9", "--sequences", "1", "--frames", "30"],
    )
    assert res.exit_code == 0, res.output
    m = read_manifest(out)
    assert m["splits"] == {"train": ["S1"], "test": ["S9"]}
    assert read_poses3d(out).num_rows == 2 * 30
    det = read_poses2d(out, ["S9"], source="detected")
    assert det.num_rows == 30 * 4 and len(read_cameras(out)) == 8
    gt = read_poses2d(out, ["S9"], source="gt")
    err = joints_to_numpy(det["joints2d"], 2) - joints_to_numpy(gt["joints2d"], 2)
    assert 0.5 < np.median(np.linalg.norm(err, axis=-1)) < 20  # detector-like noise of a few px


@pytest.mark.parametrize(
    "cmd, old, new, value",
    [
        (["evaluate", "RUN", "DS"], "--cameras", "--views", "all"),
        (["predict", "RUN", "IN", "--out", "o.parquet"], "--cameras", "--calibration", "h36m"),
        (["ingest", "bvh", "IN", "--out", "o"], "--detector-noise", "--noise", "none"),
        (["ingest", "bvh", "IN", "--out", "o"], "--split", "--test-subjects", "none"),
        (["ingest", "h36m", "RAW", "--out", "o"], "--cameras", "--calibration", "IN"),
    ],
)
def test_old_spellings_are_hidden_deprecated_aliases(tmp_path, cmd, old, new, value):
    (tmp_path / "RUN").mkdir()
    (tmp_path / "DS").mkdir()
    (tmp_path / "RAW").mkdir()
    (tmp_path / "IN").write_text("x")
    args = [str(tmp_path / a) if a in ("RUN", "DS", "RAW", "IN") else a for a in cmd]
    value = str(tmp_path / value) if value == "IN" else value
    runner = CliRunner()
    helptext = runner.invoke(cli, cmd[: 2 if cmd[0] == "ingest" else 1] + ["--help"]).output
    assert new in helptext and f"{old} " not in helptext
    res = runner.invoke(cli, args + [old, value])
    assert f"{old} is deprecated" in res.output and f"use {new}" in res.output  # then runs (and fails on dummy input)
    res = runner.invoke(cli, args + [old, value, new, value])
    assert res.exit_code == 2 and f"{old} is the old spelling of {new}" in res.output


def test_one_device_option_for_every_network_command():
    from mvtools.cli.common import DEFAULT_DEVICE, DEVICES

    seen = {}
    for name, cmd in _all_commands():
        for p in cmd.params:
            if p.name == "device":
                seen[name] = (tuple(p.type.choices), p.default)
    assert {"evaluate", "predict"} <= set(seen)
    for name in ("evaluate", "predict"):
        assert seen[name] == (DEVICES, DEFAULT_DEVICE)


def test_every_out_option_has_the_short_form():
    for name, cmd in _all_commands():
        for p in cmd.params:
            if isinstance(p, click.Option) and "--out" in p.opts and name != "train":
                assert "-o" in p.opts, name


def test_noise_none_means_no_noise_in_every_command(tmp_path):
    """`--noise none`: detections equal to the ground-truth projection (confidence 1), as in synth h36m and
    ingest bvh; `--no-detections`: no detected rows at all."""
    from mvtools.dataset import joints_to_numpy, read_poses2d

    base = ["--quiet", "synth", "dataset", "--subjects", "S1", "--sequences", "1", "--frames", "10"]
    res = CliRunner().invoke(cli, base + ["--out", str(tmp_path / "a"), "--noise", "none"])
    assert res.exit_code == 0, res.output
    det, gt = (read_poses2d(tmp_path / "a", ["S1"], source=s) for s in ("detected", "gt"))
    assert det.num_rows == gt.num_rows == 40
    np.testing.assert_array_equal(joints_to_numpy(det["joints2d"], 2), joints_to_numpy(gt["joints2d"], 2))
    assert joints_to_numpy(det["confidence"], 1).min() == 1.0
    res = CliRunner().invoke(cli, base + ["--out", str(tmp_path / "b"), "--no-detections"])
    assert res.exit_code == 0, res.output
    assert read_poses2d(tmp_path / "b", ["S1"], source="detected").num_rows == 0


def test_quiet_is_for_one_command_only(monkeypatch):
    """`mvtools -q CMD` silences that command; a Python caller's next command logs again."""
    import os

    monkeypatch.delenv("MVTOOLS_QUIET", raising=False)
    res = CliRunner().invoke(cli, ["--quiet", "augment", "--help"])
    assert res.exit_code == 0
    assert "MVTOOLS_QUIET" not in os.environ
    monkeypatch.setenv("MVTOOLS_QUIET", "0")
    CliRunner().invoke(cli, ["-q", "augment", "--help"])
    assert os.environ["MVTOOLS_QUIET"] == "0"
