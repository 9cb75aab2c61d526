"""`synth h36m`: a raw tree in the real layout and format, deterministic, and ingestible end to end."""

import json

import cdflib
import numpy as np
import pytest
from click.testing import CliRunner
from test_h36m_projection import vp3d_project

from mvtools.cli.main import cli
from mvtools.dataset import joints_to_numpy, read_manifest, read_poses2d, read_poses3d
from mvtools.h36m_cameras import H36M_CAMERA_IDS
from mvtools.ingest.h36m.cdf import read_pose_cdf
from mvtools.ingest.h36m.reader import SUBACTIONS, ingest_h36m, load_videopose3d_2d, videopose3d_key
from mvtools.synth.h36m import raw_plan, synth_h36m

SMALL = dict(subjects=["S1", "S11"], sequences=3, frames=40)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "raw"
    synth_h36m(out, seed=3, **SMALL)
    return out


def test_layout_and_format(tree):
    s = json.loads((tree / "synth.json").read_text())
    assert s["sequences"] == 6 and s["frames_per_sequence"] == 40
    for subject in SMALL["subjects"]:
        d3 = sorted(p.name for p in (tree / subject / "MyPoseFeatures/D3_Positions").iterdir())
        names = [raw for _, _, raw in raw_plan(subject, 3, seed=3)]
        assert d3 == sorted(f"{n}.cdf" for n in names)
        assert all(n in SUBACTIONS[subject] for n in names)  # real file names of that subject
        d2 = sorted(p.name for p in (tree / subject / "MyPoseFeatures/D2_Positions").iterdir())
        assert d2 == sorted(f"{n}.{c}.cdf" for n in names for c in H36M_CAMERA_IDS)
    # S1 files carry the long prefixes of the release
    assert any(
        p.name.startswith(("TakingPhoto", "WalkingDog")) for p in (tree / "S1/MyPoseFeatures/D3_Positions").iterdir()
    )
    f = cdflib.CDF(str(next((tree / "S11/MyPoseFeatures/D3_Positions").glob("*.cdf"))))
    assert f.cdf_info().zVariables == ["Pose"] and f["Pose"].shape == (1, 40, 96)
    g = cdflib.CDF(str(next((tree / "S11/MyPoseFeatures/D2_Positions").glob("*.cdf"))))
    assert g["Pose"].shape[0] == 1 and g["Pose"].shape[2] == 64


def test_32_joints_world_mm_with_static_duplicates(tree):
    for p in (tree / "S1/MyPoseFeatures/D3_Positions").glob("*.cdf"):
        j = read_pose_cdf(p, 96).reshape(-1, 32, 3)
        # duplicated static joints as in the release (h36m_facts.md 2.1): Spine=Hips, shoulders at the neck, ...
        for a, b in [(11, 0), (16, 13), (24, 13), (20, 19), (23, 22), (28, 27), (31, 30)]:
            assert np.abs(j[:, a] - j[:, b]).max() < 1e-6
        head_height = j[:, 15, 2]  # head end site above the feet: a standing/sitting adult in mm
        assert 800 < np.median(head_height) < 2100 and j[:, [3, 8], 2].min() > -50


def test_d2_is_the_h36m_projection(tree):
    """Every D2 file equals the independent VideoPose3D-formula projection of its D3 file (common frames)."""
    n = 0
    for subject in SMALL["subjects"]:
        for p in (tree / subject / "MyPoseFeatures/D3_Positions").glob("*.cdf"):
            d3 = read_pose_cdf(p, 96).reshape(-1, 32, 3)
            for cam in H36M_CAMERA_IDS:
                d2 = read_pose_cdf(p.parent.parent / "D2_Positions" / f"{p.stem}.{cam}.cdf", 64).reshape(-1, 32, 2)
                k = min(len(d2), len(d3))
                ref = vp3d_project(d3[:k].reshape(-1, 3), subject, cam).reshape(k, 32, 2)
                assert np.abs(d2[:k] - ref).max() < 1e-3
                n += 1
    assert n == 24


def test_detections_layout(tree):
    pos, meta = load_videopose3d_2d(tree / "detections.npz")
    assert meta["layout_name"] == "h36m" and meta["num_joints"] == 17
    for subject in SMALL["subjects"]:
        for _key, lst in pos[subject].items():
            assert len(lst) == 4
            for a in lst:
                assert a.dtype == np.float32 and a.shape[1:] == (17, 3) and 40 <= len(a) <= 48
                assert (a[..., 2] >= 0).all() and (a[..., 2] <= 1).all() and a[..., 2].std() > 0.01
    # keyed like VideoPose3D's files: S1's TakingPhoto/WalkingDog files under Photo/WalkDog keys
    assert set(pos["S1"]) == {videopose3d_key(raw) for _, _, raw in raw_plan("S1", 3, seed=3)}
    assert any(k.startswith(("Photo", "WalkDog")) for k in pos["S1"])


def test_deterministic(tree, tmp_path):
    synth_h36m(tmp_path / "again", seed=3, **SMALL)
    synth_h36m(tmp_path / "other", seed=4, **SMALL)
    compared = 0
    for p in (tree / "S11/MyPoseFeatures/D3_Positions").glob("*.cdf"):
        np.testing.assert_array_equal(read_pose_cdf(p), read_pose_cdf(tmp_path / "again" / p.relative_to(tree)))
        q = tmp_path / "other" / p.relative_to(tree)  # another seed: another plan and other motion
        if q.exists():
            assert not np.array_equal(read_pose_cdf(p), read_pose_cdf(q))
            compared += 1
    assert {p.name for p in (tree / "S1/MyPoseFeatures/D3_Positions").iterdir()} != {
        p.name for p in (tmp_path / "other/S1/MyPoseFeatures/D3_Positions").iterdir()
    } or compared
    a, _ = load_videopose3d_2d(tree / "detections.npz")
    b, _ = load_videopose3d_2d(tmp_path / "again/detections.npz")
    for key in a["S1"]:
        for x, y in zip(a["S1"][key], b["S1"][key]):
            np.testing.assert_array_equal(x, y)
    assert (
        json.loads((tree / "synth.json").read_text())["length_quirks"]
        == json.loads((tmp_path / "again/synth.json").read_text())["length_quirks"]
    )


def test_same_motion_as_direct_synth_dataset(tmp_path):
    """synth h36m -> CDF -> ingest gives the 3D and ground-truth 2D that synth_dataset writes directly."""
    from mvtools.synth.dataset import synth_dataset

    synth_h36m(tmp_path / "raw", subjects=["S5"], sequences=2, frames=30, seed=1, detections=False, length_quirks=False)
    ingest_h36m(tmp_path / "raw", tmp_path / "a")
    synth_dataset(tmp_path / "b", subjects=["S5"], sequences_per_subject=2, frames=30, seed=1, noise=None)
    ta = read_poses3d(tmp_path / "a").to_pandas()
    tb = read_poses3d(tmp_path / "b").to_pandas()
    common = set(zip(ta.action, ta.subaction)) & set(zip(tb.action, tb.subaction))
    assert common  # both start with the subject's first action, sub-action 1
    for action, sub in common:
        a = ta[(ta.action == action) & (ta.subaction == sub)].sort_values("frame")
        b = tb[(tb.action == action) & (tb.subaction == sub)].sort_values("frame")
        np.testing.assert_allclose(np.stack(a.joints3d.to_numpy()), np.stack(b.joints3d.to_numpy()), atol=1e-3)
        ga = read_poses2d(tmp_path / "a", ["S5"], action=action, subaction=sub, camera="60457274").sort_by("frame")
        gb = read_poses2d(tmp_path / "b", ["S5"], action=action, subaction=sub, camera="60457274", source="gt").sort_by(
            "frame"
        )
        np.testing.assert_allclose(
            joints_to_numpy(ga.column("joints2d"), 2), joints_to_numpy(gb.column("joints2d"), 2), atol=1e-3
        )


def test_s11_directions_has_no_detections(tmp_path):
    plan = raw_plan("S11", 30)
    k = [raw for _, _, raw in plan].index("Directions") + 1
    synth_h36m(tmp_path / "raw", subjects=["S11"], sequences=k, frames=10, seed=0)
    pos, _ = load_videopose3d_2d(tmp_path / "raw/detections.npz")
    assert "Directions" not in pos["S11"] and len(pos["S11"]) == k - 1
    s = ingest_h36m(tmp_path / "raw", tmp_path / "ds", detections=tmp_path / "raw/detections.npz")
    msgs = [n["message"] for n in s["notes"] if n.get("raw_name") == "Directions"]
    assert any("54138969" in m for m in msgs) and any("no detections" in m for m in msgs)
    assert read_poses3d(tmp_path / "ds", ["S11"], raw_name="Directions").num_rows > 0


def test_cli_synth_then_ingest(tmp_path):
    raw, ds = tmp_path / "raw", tmp_path / "ds"
    r = CliRunner().invoke(
        cli,
        ["synth", "h36m", "--out", str(raw), "--subjects", "S9", "--sequences", "2", "--frames", "25", "--seed", "5"],
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        cli, ["ingest", "h36m", str(raw), "--out", str(ds), "--detections", str(raw / "detections.npz")]
    )
    assert r.exit_code == 0, r.output
    m = read_manifest(ds)
    assert m["splits"] == {"train": [], "test": ["S9"]} and m["sequences"] == 2
    assert m["rows"]["poses2d"]["detected"] == m["rows"]["poses2d"]["gt"] == 4 * m["rows"]["poses3d"]
    # a directory that is not a synth tree is never replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/keep.txt").write_text("x")
    r = CliRunner().invoke(cli, ["synth", "h36m", "--out", str(tmp_path / "mine"), "--frames", "5"])
    assert r.exit_code != 0 and "refusing to replace" in r.output
    assert (tmp_path / "mine/keep.txt").read_text() == "x"
