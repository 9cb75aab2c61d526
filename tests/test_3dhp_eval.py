"""The 3DHP protocol on an ingested fixture dataset: the manifest's reference column, valid-frame filtering,
scene / activity grouping, and PCK@150 mm / AUC (mvtools.evaluate.metrics) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from test_3dhp import H36M17_NAMES, H36M_TO_3DHP, NAMES_TEST, both, tree  # noqa: F401  (fixtures)

from mvtools.dataset import joints_to_numpy, read_manifest, read_poses3d
from mvtools.evaluate.metrics import auc, pck, root_relative

ORDER = [NAMES_TEST.index(H36M_TO_3DHP[n]) for n in H36M17_NAMES]


def _gt(out):
    m = read_manifest(out)
    t = read_poses3d(out, m["splits"]["test"])
    valid = t["valid"].to_numpy(zero_copy_only=False)
    gt = joints_to_numpy(t[m["evaluation"]["reference_column"]], 3)
    return m, t, valid, gt


def test_reference_column_is_univ_and_valid_filters(tree, both):
    root, info, counts, cams = tree
    out, _ = both
    m, t, valid, gt = _gt(out)
    assert m["evaluation"]["reference_column"] == "joints3d_univ"
    subj = np.asarray(t["subject"].to_pylist())
    frame = t["frame"].to_numpy()
    # a perfect prediction of univ_annot3 (from the fixture) scores 100 on valid frames only
    pred = np.stack([info[s]["univ"][f][ORDER] for s, f in zip(subj, frame)])
    assert valid.sum() == info["TS1"]["valid"].sum() + info["TS5"]["valid"].sum()
    assert pck(root_relative(pred[valid]), root_relative(gt[valid])) == 100.0
    assert auc(root_relative(pred[valid]), root_relative(gt[valid])) == pytest.approx(100 * 30 / 31)
    assert pck(root_relative(pred), root_relative(gt)) < 100.0  # invalid frames' annotations are unusable
    # annot3 (joints3d) is not the reference: the universal skeleton is 8 % smaller in the fixture
    a3 = joints_to_numpy(t["joints3d"], 3)
    assert np.abs(root_relative(a3[valid]) - root_relative(gt[valid])).max() > 10


def test_pck_auc_hand_computed(both):
    """Per-joint errors 0 mm (7 joints), 102 mm (5) and 202 mm (5) on every valid frame (no ties with the
    5 mm threshold grid)."""
    out, _ = both
    m, t, valid, gt = _gt(out)
    g = root_relative(gt[valid])
    err = np.array([0.0] * 7 + [102.0] * 5 + [202.0] * 5)
    direction = np.array([0.6, 0.0, 0.8])  # unit vector
    pred = g + err[None, :, None] * direction
    # 17 joints: PCK = 12/17; AUC: 0 mm passes 30 of 31 thresholds (not 0), 102 mm passes 105..150 (10)
    assert pck(pred, g, 150.0) == pytest.approx(100 * 12 / 17)
    assert auc(pred, g) == pytest.approx(100 * (7 * 30 + 5 * 10) / (17 * 31))
    # the official 14 joints (no pelvis, spine, neck/nose): errors 0 x6, 102 x3 (thorax, head, l.shoulder), 202 x5
    j = m["evaluation"]["pck_joints"]
    assert pck(pred[:, j], g[:, j]) == pytest.approx(100 * 9 / 14)
    assert auc(pred[:, j], g[:, j]) == pytest.approx(100 * (6 * 30 + 3 * 10) / (14 * 31))


def test_per_scene_and_activity_groups(tree, both):
    root, info, counts, cams = tree
    out, _ = both
    m, t, valid, gt = _gt(out)
    scene = np.asarray(t["scene"].to_pylist())
    action = np.asarray(t["action"].to_pylist())
    g = root_relative(gt)
    # errors 200 mm on the 16 non-root joints of outdoor frames, 0 elsewhere: per scene PCK 100 / (1/17)
    off = np.where(scene == "outdoor", 200.0, 0.0)[:, None, None] * np.array([0.0, 0.0, 1.0])
    pred = g + off * (np.arange(17) > 0)[None, :, None]
    n_green = int(info["TS1"]["valid"].sum())
    n_out = int(info["TS5"]["valid"].sum())
    for s, expect in (("greenscreen", 100.0), ("outdoor", 100 / 17)):
        sel = valid & (scene == s)
        assert pck(pred[sel], g[sel]) == pytest.approx(expect)
    assert pck(pred[valid], g[valid]) == pytest.approx(100 * (17 * n_green + n_out) / (17 * (n_green + n_out)))
    # activity labels come per frame from activity_annotation
    ts1 = valid & (np.asarray(t["subject"].to_pylist()) == "TS1")
    codes = info["TS1"]["activity"][info["TS1"]["valid"]]
    names = ["Stand/Walk", "Exercise", "Sit on Chair", "Reach/Crouch", "On Floor", "Sports", "Misc."]
    got = {a: int((action[ts1] == a).sum()) for a in names}
    assert got == {n: int((codes == i + 1).sum()) for i, n in enumerate(names)}


def test_evaluation_views_hooks(tree, both):
    """mvtools.evaluate on the 3DHP dataset: valid rows only, univ_annot3 as ground truth (camera frame = world),
    scene labels, and TS5's 2D undistorted onto the pinhole projection (OpenCV reference)."""
    import cv2

    from mvtools.evaluate.evaluation import evaluation_views

    root, info, counts, cams = tree
    out, _ = both
    v = evaluation_views(out, source="gt")
    assert v["reference_column"] == "joints3d_univ" and v["root"] == 0
    assert sorted(set(v["subject"])) == ["TS1", "TS5"]
    for ts, scene in (("TS1", "greenscreen"), ("TS5", "outdoor")):
        sel = v["subject"] == ts
        ref = info[ts]
        assert sel.sum() == ref["valid"].sum()  # invalid frames dropped
        assert set(v["scene"][sel]) == {scene} and set(v["camera"][sel]) == {"test"}
        # rows come in poses2d order, which is frame order within a sequence
        np.testing.assert_allclose(v["gt"][sel], ref["univ"][ref["valid"]][:, ORDER], atol=0.05)
        acts = np.array(["Stand/Walk", "Exercise", "Sit on Chair", "Reach/Crouch", "On Floor", "Sports", "Misc."])
        assert list(v["action"][sel]) == list(acts[ref["activity"][ref["valid"]] - 1])
    sel = v["subject"] == "TS5"
    fx, fy, cx, cy = v["K"][sel][0]
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    X = info["TS5"]["annot3"][info["TS5"]["valid"]][:, ORDER]
    pin = cv2.projectPoints(X.reshape(-1, 3), np.zeros(3), np.zeros(3), K, None)[0].reshape(X.shape[:2] + (2,))
    np.testing.assert_allclose(v["x2d"][sel], pin, atol=0.01)
