"""The demo pipeline end to end, at a tiny size: every stage runs and writes what it promises."""
import json

from click.testing import CliRunner

from mvtools.cli.main import cli


def test_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(cli, ["--quiet", "demo", "--out", str(out), "--sequences", "1", "--frames", "120",
                                   "--epochs", "1", "--channels", "32"])
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
