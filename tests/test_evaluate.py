"""evaluate: single-view protocol on a constructed dataset with a lifter whose output is known."""

import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import REST, make_dataset

from mvtools.cli.main import cli
from mvtools.dataset import DatasetError, joints_to_numpy, read_cameras, read_poses3d
from mvtools.evaluate.evaluation import evaluate_run, evaluation_views
from mvtools.train.model import OUTPUT_SCALE_MM, TwoBranch

torch.set_num_threads(1)
CONST = REST - REST[0]  # the constant pose the fake run predicts, root-relative mm


def _constant_run(path, source2d="gt"):
    """A run directory whose lifting branch outputs CONST for every input (zero output weights, bias = CONST)."""
    path.mkdir()
    m = TwoBranch(8, 1, 0.0)
    with torch.no_grad():
        m.lift.net.out.weight.zero_()
        m.lift.net.out.bias.copy_(torch.tensor(CONST.reshape(-1) / OUTPUT_SCALE_MM, dtype=torch.float32))
    cfg = dict(channels=8, blocks=1, dropout=0.0, source2d=source2d)
    torch.save({"model": m.state_dict(), "config": cfg, "epoch": 1, "phase": "main"}, path / "best.pt")
    return path


def _expected(ds, subjects, valid_only=False, column="joints3d", scale=None):
    """Per-row errors of CONST against the GT in each given camera, computed with OpenCV Rodrigues transforms."""
    cams = {(c.subject, c.camera): c for c in read_cameras(ds, source="given")}
    t3 = read_poses3d(ds, subjects)
    P = joints_to_numpy(t3.column(column), 3).astype(np.float64)
    actions = np.array(t3.column("action").to_pylist())
    subj = np.array(t3.column("subject").to_pylist())
    keep = np.array(t3.column("valid").to_pylist()) if valid_only else np.ones(len(P), bool)
    errs, acts = [], []
    for (s, _cid), c in cams.items():
        sel = (subj == s) & keep
        if not sel.any():
            continue
        rvec, _ = cv2.Rodrigues(c.R)
        R, _ = cv2.Rodrigues(rvec)
        Y = P[sel] @ R.T + c.t
        Y = Y - Y[:, :1]
        errs.append(np.linalg.norm(Y - CONST, axis=-1).mean(-1))
        acts.append(actions[sel])
    return np.concatenate(errs), np.concatenate(acts)


def test_views_are_undistorted_and_in_camera_frame(tmp_path):
    ds = make_dataset(tmp_path / "ds", frames=12)
    v = evaluation_views(ds, source="gt")
    assert len(v["x2d"]) == 2 * 12 * 4  # test subject S9: 2 actions x 12 frames x 4 cameras
    # GT 2D were projected WITH lens distortion; after undistortion they are the pinhole projection of the GT
    for i in range(0, len(v["x2d"]), 17):
        fx, fy, cx, cy = v["K"][i]
        ref, _ = cv2.projectPoints(
            v["gt"][i], np.zeros(3), np.zeros(3), np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), None
        )
        np.testing.assert_allclose(v["x2d"][i], ref[:, 0], atol=1e-3)


def test_evaluate_constant_lifter(tmp_path):
    ds = make_dataset(tmp_path / "ds", frames=12)
    run = _constant_run(tmp_path / "run")
    res = evaluate_run(run, ds, source="gt")
    e, acts = _expected(ds, ["S9"])
    assert res["test_flip"] is False  # a checkpoint from before --test-flip existed: evaluated as trained
    assert res["n_poses"] == len(e) == 96
    assert res["mpjpe"] == pytest.approx(e.mean(), rel=1e-5)
    assert set(res["per_action"]) == {"Walk", "Sit"}
    for a in ("Walk", "Sit"):
        assert res["per_action"][a]["mpjpe"] == pytest.approx(e[acts == a].mean(), rel=1e-5)
        assert res["per_action"][a]["n"] == int((acts == a).sum())
    assert res["mpjpe_action_mean"] == pytest.approx(np.mean([e[acts == a].mean() for a in ("Walk", "Sit")]))
    assert 0 < res["p_mpjpe"] < res["mpjpe"]
    for k in ("pck150", "auc", "n_mpjpe", "per_camera", "per_subject", "p_mpjpe_action_mean"):
        assert k in res
    assert 0 <= res["auc"] <= res["pck150"] <= 100


def test_evaluate_3dhp_hooks(tmp_path):
    ds = make_dataset(tmp_path / "ds", frames=12, extras=True)
    run = _constant_run(tmp_path / "run")
    res = evaluate_run(run, ds, subjects=["S9"], source="gt")
    e, _ = _expected(ds, ["S9"], valid_only=True, column="joints3d_univ")
    assert res["n_poses"] == len(e) == 2 * 8 * 4  # frames 0, 3, 6, 9 are invalid
    assert res["mpjpe"] == pytest.approx(e.mean(), rel=1e-5)
    assert res["reference_column"] == "joints3d_univ"
    assert set(res["per_scene"]) == {"studio", "outdoor"}
    assert sum(d["n"] for d in res["per_scene"].values()) == res["n_poses"]
    # PCK/AUC per scene pool the same joints as the overall figure (identity: pose-weighted mean)
    for k in ("pck150", "auc"):
        pooled = sum(d[k] * d["n"] for d in res["per_scene"].values()) / res["n_poses"]
        assert pooled == pytest.approx(res[k], rel=1e-9)
        assert all(0 <= d[k] <= 100 for d in res["per_action"].values())
    assert res["n_invalid_frames"] == 4 * 2 * 4 and res["n_unmatched_2d"] == 0  # 4 invalid frames x 2 actions x 4 cams
    # both joint sets: the manifest's pck_joints (default figure) and all 17, from the same prediction
    from mvtools.evaluate.evaluation import format_table

    assert 0 <= res["auc_all_joints"] <= res["pck150_all_joints"] <= 100
    if len(res["pck_joints"]) == 17:
        assert (res["pck150_all_joints"], res["auc_all_joints"]) == (res["pck150"], res["auc"])
    else:
        assert f"({len(res['pck_joints'])} joints) [all 17 joints: PCK" in format_table(res)


def test_cli_evaluate_json_and_errors(tmp_path):
    ds = make_dataset(tmp_path / "ds", frames=6)
    run = _constant_run(tmp_path / "run")
    out = tmp_path / "res.json"
    r = CliRunner().invoke(
        cli, ["evaluate", str(run), str(ds), "--subjects", "S1,S9", "--source", "detected", "--json", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert "Walk" in r.output and "mean over poses" in r.output
    res = json.loads(out.read_text())
    assert res["subjects"] == ["S1", "S9"] and res["source"] == "detected"
    assert res["n_poses"] == 2 * 2 * 6 * 4
    assert set(res["per_subject"]) == {"S1", "S9"} and res["mvtools_output"] == "evaluation"
    # an existing JSON is replaced only when asked, and only if it is an mvtools evaluation
    args = ["evaluate", str(run), str(ds), "--subjects", "S9", "--json", str(out)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code != 0 and "--overwrite" in r.output and json.loads(out.read_text())["subjects"] == ["S1", "S9"]
    r = CliRunner().invoke(cli, args + ["--overwrite"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["subjects"] == ["S9"]
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    r = CliRunner().invoke(cli, args[:-1] + [str(notes), "--overwrite"])
    assert r.exit_code != 0 and "not an mvtools evaluation" in r.output and notes.read_text() == '{"mine": 1}'
    ckpt = (run / "best.pt").read_bytes()
    r = CliRunner().invoke(cli, args[:-1] + [str(run / "best.pt"), "--overwrite"])
    assert r.exit_code != 0 and (run / "best.pt").read_bytes() == ckpt
    r = CliRunner().invoke(cli, args[:-1] + [str(run / "eval.json")])  # docs/training.md's RUN/eval.json
    assert r.exit_code == 0 and (run / "eval.json").exists() and not list(run.glob(".*.lock")), r.output
    r = CliRunner().invoke(cli, ["evaluate", str(run), str(ds), "--subjects", "S77"])
    assert r.exit_code != 0 and "S77" in r.output
    with pytest.raises(DatasetError, match="no 'test' split"):
        import json as _j

        m = _j.loads((ds / "manifest.json").read_text())
        m["splits"] = {"train": ["S1"]}
        (ds / "manifest.json").write_text(_j.dumps(m))
        evaluate_run(run, ds)
    r = CliRunner().invoke(cli, ["evaluate", str(tmp_path), str(ds), "--subjects", "S9"])
    assert r.exit_code != 0 and "checkpoint" in r.output
