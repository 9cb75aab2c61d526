"""The demo pipeline end to end, at a tiny size: every stage runs and writes what it promises."""

import json

from click.testing import CliRunner

from mvtools.cli.main import cli


def test_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(
        cli,
        [
            "--quiet",
            "demo",
            "--out",
            str(out),
            "--sequences",
            "1",
            "--frames",
            "120",
            "--epochs",
            "1",
            "--channels",
            "32",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["results"]) == {"trans-reproj", "reproj", "supervised"}
    for loss, r in summary["results"].items():
        assert r["n_poses"] == 2 * 120 * 4  # S9 + S11, one sequence each, 4 real cameras
        assert 0 < r["p_mpjpe"] <= r["mpjpe"] * 1.05
        assert (out / f"run-{loss}" / "best.pt").exists()
    assert "trans-reproj" in res.output and "MPJPE" in res.output
    assert (out / "dataset" / "calibration_report.json").exists()
    assert json.loads((out / "dataset" / "pairs" / "manifest.json").read_text())["virtual_views"] == 8


def test_table_prints_pck_as_the_percent_it_is():
    from mvtools.demo import format_table

    table = format_table(
        {
            "reproj": {"mpjpe": 250.0, "p_mpjpe": 120.0, "pck150": 0.8, "n_poses": 10},
            "supervised": {"mpjpe": 40.0, "p_mpjpe": 30.0, "pck150": 97.25, "n_poses": 10},
        }
    )
    assert "| reproj | 250.0 | 120.0 | 0.8 | 10 |" in table  # 0.8 % stays 0.8 %, not 80 %
    assert "| supervised | 40.0 | 30.0 | 97.2 | 10 |" in table
