"""BVH reader, forward kinematics, units, resampling and the CMU joint map (mvtools/ingest/bvh/)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from shared_data import CMU, needs_cmu

from mvtools.dataset import DatasetError
from mvtools.ingest.bvh.joint_maps import apply_joint_map, joint_map_matrix, load_joint_map
from mvtools.ingest.bvh.kinematics import forward_kinematics, resample_bvh, resample_times
from mvtools.ingest.bvh.reader import UNITS, detect_units, has_tpose_frame, parse_bvh, read_bvh, to_z_up
from mvtools.rotations import euler_to_quat, euler_to_rotmat, quat_to_rotmat
from mvtools.skeleton import H36M17_NAMES, chain_kinematics


def one_joint_bvh(order: str, angles, pos=(0.0, 0.0, 0.0), offset=(1, 2, 3)) -> str:
    """Root with 6 channels (positions, then rotations in ``order``) and one End Site at ``offset``."""
    ch = " ".join(f"{a}rotation" for a in order)
    vals = " ".join(str(v) for v in list(pos) + list(angles))
    return f"""HIERARCHY
ROOT Hips
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition {ch}
  End Site
  {{
    OFFSET {offset[0]} {offset[1]} {offset[2]}
  }}
}}
MOTION
Frames: 1
Frame Time: 0.01
{vals}
"""


# 90-degree rotations written out by hand: Rx v = (x, -z, y), Ry v = (z, y, -x), Rz v = (-y, x, z).
@pytest.mark.parametrize(
    "order,expected",
    [
        ("ZXY", (-1, 3, 2)),  # Rz Rx Ry (1,2,3): Ry->(3,2,-1), Rx->(3,1,2), Rz->(-1,3,2)
        ("ZYX", (3, 2, -1)),  # Rx->(1,-3,2), Ry->(2,-3,-1), Rz->(3,2,-1)
        ("XYZ", (3, -2, 1)),  # Rz->(-2,1,3), Ry->(3,1,2), Rx->(3,-2,1)
    ],
)
def test_fk_rotation_orders_hand_computed(order, expected):
    b = parse_bvh(one_joint_bvh(order, (90, 90, 90), pos=(10, 20, 30)))
    P = forward_kinematics(b)
    assert b.names == ["Hips", "Hips_End"]
    np.testing.assert_allclose(P[0, 0], [10, 20, 30], atol=1e-9)
    np.testing.assert_allclose(P[0, 1], np.add([10, 20, 30], expected), atol=1e-9)


@pytest.mark.parametrize("order", ["ZXY", "ZYX", "XYZ", "YXZ"])
def test_euler_matches_scipy_intrinsic(order):
    rng = np.random.default_rng(0)
    ang = rng.uniform(-180, 180, (20, 3))
    ref = Rotation.from_euler(order.upper(), ang, degrees=True).as_matrix()  # upper case = intrinsic
    np.testing.assert_allclose(euler_to_rotmat(ang, order), ref, atol=1e-12)
    np.testing.assert_allclose(quat_to_rotmat(euler_to_quat(ang, order)), ref, atol=1e-12)


TWO_LEVEL = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Xrotation Yrotation Zrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
  JOINT Leg
  {
    OFFSET 2 0 0
    CHANNELS 6 Zrotation Xposition Yposition Zposition Yrotation Xrotation
    End Site
    {
      OFFSET 0 -4 0
    }
  }
}
MOTION
Frames: 1
Frame Time: 0.008333
1 2 3 90 0 0 90 0 0 0 1 1 1 0 0
"""


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_fk_two_level_chain_hand_computed(mode):
    b = parse_bvh(TWO_LEVEL)
    b.position_mode = mode
    assert b.names == ["Hips", "Chest", "Chest_End", "Leg", "Leg_End"]
    assert list(b.parents) == [-1, 0, 1, 0, 3]
    assert b.fps == 120.0
    P = forward_kinematics(b)[0]
    # root Rz(90): Chest = (1,2,3) + Rz90 (0,10,0) = (-9, 2, 3)
    np.testing.assert_allclose(P[1], [-9, 2, 3], atol=1e-9)
    # Chest_End = Chest + Rz90 Rx90 (0,5,0) = Chest + Rz90 (0,0,5) = (-9, 2, 8)
    np.testing.assert_allclose(P[2], [-9, 2, 8], atol=1e-9)
    if mode == "add":  # PyMO: offset (2,0,0) + position channels (1,1,1) = (3,1,1); Rz90 -> (-1,3,1); + root
        np.testing.assert_allclose(P[3], [0, 5, 4], atol=1e-9)
    else:  # Blender, LAFAN1: the channels (1,1,1) are the local translation; Rz90 -> (-1,1,1); + root
        np.testing.assert_allclose(P[3], [0, 3, 4], atol=1e-9)
    # Leg local rotation = identity, so Leg_End = Leg + Rz90 (0,-4,0) = Leg + (4, 0, 0)
    np.testing.assert_allclose(P[4], P[3] + [4, 0, 0], atol=1e-9)


def random_chain_bvh(T: int, order: str = "ZYX", seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    ch = " ".join(f"{a}rotation" for a in order)
    head = f"""HIERARCHY
ROOT Hips
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition {ch}
  JOINT A
  {{
    OFFSET 3 -4 0
    CHANNELS 3 {ch}
    JOINT B
    {{
      OFFSET 0 -6 8
      CHANNELS 3 {ch}
      End Site
      {{
        OFFSET 1 2 2
      }}
    }}
  }}
}}
MOTION
Frames: {T}
Frame Time: 0.0083333
"""
    vals = np.concatenate([rng.normal(0, 50, (T, 3)), rng.uniform(-180, 180, (T, 9))], 1)
    return head + "\n".join(" ".join(f"{v:.5f}" for v in row) for row in vals) + "\n"


def test_bone_lengths_constant_over_time():
    b = parse_bvh(random_chain_bvh(200))
    P = forward_kinematics(b)
    for j, p in enumerate(b.parents):
        if p < 0:
            continue
        L = np.linalg.norm(P[:, j] - P[:, p], axis=-1)
        np.testing.assert_allclose(L, np.linalg.norm(b.offsets[j]), rtol=1e-9)


def human_bvh(scale: float, hint: str = "") -> str:
    """A 1.75 m standing skeleton (lengths given in mm, divided by ``scale`` mm/unit)."""

    def o(*v):
        return " ".join(f"{x / scale:.6f}" for x in v)

    return f"""{hint}HIERARCHY
ROOT Hips
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT LeftUpLeg
  {{
    OFFSET {o(100, -50, 0)}
    CHANNELS 3 Zrotation Yrotation Xrotation
    JOINT LeftLeg
    {{
      OFFSET {o(0, -420, 0)}
      CHANNELS 3 Zrotation Yrotation Xrotation
      End Site
      {{
        OFFSET {o(0, -430, 0)}
      }}
    }}
  }}
  JOINT Spine
  {{
    OFFSET {o(0, 500, 0)}
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {{
      OFFSET {o(0, 350, 0)}
    }}
  }}
}}
MOTION
Frames: 2
Frame Time: 0.02
{o(10, 950, 20)} 5 10 15 1 2 3 4 5 6 7 8 9
{o(30, 960, 40)} 6 11 16 2 3 4 5 6 7 8 9 10
"""


@pytest.mark.parametrize("unit", ["inch", "cm", "m", "mm"])
def test_unit_detection_gives_same_mm(unit):
    ref = forward_kinematics(parse_bvh(human_bvh(1.0)))
    b = parse_bvh(human_bvh(UNITS[unit]))
    name, mm, how = detect_units(b)
    assert name == unit and mm == UNITS[unit]
    assert "1.75 m" in how
    np.testing.assert_allclose(forward_kinematics(b) * mm, ref, atol=1e-3)


def test_unit_header_hint_and_override():
    b = parse_bvh(human_bvh(10.0, hint="# exported by a tool, units: centimeters\n"))
    assert detect_units(b) == ("cm", 10.0, "header")
    assert detect_units(b, "inch")[0] == "inch"
    with pytest.raises(ValueError, match="unknown unit"):
        detect_units(b, "furlong")


def test_to_z_up_is_a_proper_rotation():
    p = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(to_z_up(p), [[1.0, -3.0, 2.0]])  # Y (up) -> Z, Z (forward) -> -Y
    M = to_z_up(np.eye(3))
    assert np.isclose(np.linalg.det(M), 1.0)


# ----------------------------------------------------------------------------- malformed files
def error_of(text: str) -> str:
    with pytest.raises(DatasetError) as e:
        parse_bvh(text, "bad.bvh")
    return str(e.value)


def test_truncated_motion_block_names_line():
    text = random_chain_bvh(5)
    lines = text.splitlines()
    msg = error_of("\n".join(lines[:-2]) + "\n")  # 3 of 5 frames
    n_lines = len(lines) - 2
    assert msg.startswith("bad.bvh: line ") and "truncated" in msg and "Frames: 5" in msg
    assert f"line {n_lines}:" in msg


def test_truncated_last_line_names_line():
    text = random_chain_bvh(4)
    lines = text.splitlines()
    lines[-1] = " ".join(lines[-1].split()[:5])
    msg = error_of("\n".join(lines))
    assert f"line {len(lines)}:" in msg and "channel count mismatch" in msg and "12 channels" in msg


def test_channels_count_mismatch_names_line():
    text = TWO_LEVEL.replace("CHANNELS 3 Xrotation Yrotation Zrotation", "CHANNELS 3 Xrotation Yrotation")
    msg = error_of(text)
    assert "line 9:" in msg and "channel count mismatch" in msg


def test_unknown_rotation_order_names_line():
    chans = "CHANNELS 3 Xrotation Yrotation Zrotation"
    msg = error_of(TWO_LEVEL.replace(chans, "CHANNELS 3 Xrotation Wrotation Zrotation"))
    assert "line 9:" in msg and "unknown channel 'Wrotation'" in msg
    msg = error_of(TWO_LEVEL.replace(chans, "CHANNELS 3 Xrotation Xrotation Zrotation"))
    assert "line 9:" in msg and "unknown rotation order 'XXZ'" in msg


def test_other_malformed_inputs(tmp_path):
    assert "line 4:" in error_of(TWO_LEVEL.replace("OFFSET 0 0 0", "OFFSET 0 zero 0"))
    assert "not a BVH file" in error_of("hello\n")
    assert "no MOTION" in error_of(TWO_LEVEL.split("MOTION")[0])
    assert "not a number" in error_of(TWO_LEVEL.replace("1 2 3 90", "1 2 x 90"))
    assert "line 28: frame 0 has a non-finite value" in error_of(TWO_LEVEL.replace("1 2 3 90", "1 2 nan 90"))
    second = "0 " + "1 " * 14 + "\n"
    two = TWO_LEVEL.replace("Frames: 1", "Frames: 2").replace("0 0 0 1 1 1 0 0\n", "0 0 0 1 1 1 0 0\n\n" + second)
    assert "line 29: blank line inside the motion block" in error_of(two)
    p = tmp_path / "missing.bvh"
    with pytest.raises(DatasetError, match="missing.bvh"):
        read_bvh(p)


# ----------------------------------------------------------------------------- resampling
def test_resample_times():
    src = resample_times(241, 120.0, 50.0)  # 2 s at 120 fps -> 101 frames at 50 fps
    assert len(src) == 101
    np.testing.assert_allclose(src[:3], [0, 2.4, 4.8])
    assert src[-1] == 240
    np.testing.assert_array_equal(resample_times(10, 120, None), np.arange(10))


def test_slerp_resampling_interpolates_angle():
    # one joint rotating about Z at constant speed: 0, 10, 20, ... degrees
    T = 13
    text = one_joint_bvh("ZYX", (0, 0, 0)).replace("Frames: 1", f"Frames: {T}")
    head, _ = text.rsplit("Frame Time: 0.01\n", 1)
    rows = "\n".join(f"{i} 0 0 {10 * i} 0 0" for i in range(T))
    b = parse_bvh(head + "Frame Time: 0.01\n" + rows + "\n")
    # the ingest path: Euler -> quaternion slerp on the needed frames only, 100 Hz -> 40 Hz
    r3, t3, src3 = resample_bvh(b, 40.0)
    np.testing.assert_allclose(src3, np.arange(len(src3)) * 2.5)
    ang3 = np.degrees(np.arctan2(r3[:, 0, 1, 0], r3[:, 0, 0, 0]))
    np.testing.assert_allclose(ang3, 10 * src3, atol=1e-9)
    np.testing.assert_allclose(t3[:, 0, 0], src3, atol=1e-12)
    r4, _, _ = resample_bvh(b, 40.0, "nearest")
    np.testing.assert_allclose(np.degrees(np.arctan2(r4[:, 0, 1, 0], r4[:, 0, 0, 0])), 10 * np.rint(src3), atol=1e-9)
    P = chain_kinematics(b.parents, r3, t3)
    np.testing.assert_allclose(np.linalg.norm(P[:, 1] - P[:, 0], axis=-1), np.sqrt(14), rtol=1e-12)


def test_slerp_takes_the_short_way_across_180():
    # a joint turning about X from 170 to -170 degrees (i.e. +20 degrees through 180)
    text = one_joint_bvh("ZYX", (0, 0, 0)).replace("Frames: 1", "Frames: 2")
    head, _ = text.rsplit("Frame Time: 0.01\n", 1)
    b = parse_bvh(head + "Frame Time: 0.01\n0 0 0 0 0 170\n0 0 0 0 0 -170\n")
    r, _, _ = resample_bvh(b, 200.0)  # 100 Hz -> 200 Hz: the midpoint
    np.testing.assert_allclose(r[1, 0], euler_to_rotmat(np.array([180.0]), "X"), atol=1e-12)


def test_joint_map_file_format(tmp_path):
    jm = load_joint_map("cmu")
    assert set(jm["joints"]) == set(H36M17_NAMES)
    assert jm["joints"]["neck"] == {"Neck1": 0.5, "Head": 0.5}
    bad = tmp_path / "map.json"
    bad.write_text('{"joints": {"pelvis": "Hips"}}')
    with pytest.raises(ValueError, match="map.json: missing H36M joint"):
        load_joint_map(bad)
    with pytest.raises(ValueError, match="nope.json: joint map not found"):
        load_joint_map(tmp_path / "nope.json")
    b = parse_bvh(TWO_LEVEL)
    with pytest.raises(DatasetError, match="LeftUpLeg"):
        joint_map_matrix(b.names, jm, "two.bvh")


# ----------------------------------------------------------------------------- real CMU files
@needs_cmu
def test_cmu_units_and_tpose_frame():
    b = read_bvh(CMU / "02_01.bvh")
    assert b.num_frames == 344 and b.fps == 120.0 and len(b.names) == 38
    name, mm, how = detect_units(b)
    assert name == "cmu" and abs(mm - 56.444) < 1e-3
    assert has_tpose_frame(b)
    b.motion = b.motion[1:]
    assert not has_tpose_frame(b)


@needs_cmu
@pytest.mark.parametrize("clip", ["02_01", "05_01", "09_01"])
def test_cmu_joint_map_anatomy(clip):
    b = read_bvh(CMU / f"{clip}.bvh")
    b.motion = b.motion[1:]
    _, mm, _ = detect_units(b)
    P = to_z_up(forward_kinematics(b) * mm)
    X = apply_joint_map(P, joint_map_matrix(b.names, load_joint_map("cmu"), b.path))
    n = {k: i for i, k in enumerate(H36M17_NAMES)}
    for side in ("left", "right"):
        femur = np.linalg.norm(X[:, n[f"{side}_hip"]] - X[:, n[f"{side}_knee"]], axis=-1)
        assert 350 <= femur.min() and femur.max() <= 550
        np.testing.assert_allclose(femur, femur[0], rtol=1e-9)  # rigid bone
    z = X[..., 2]
    # upright: head above thorax above pelvis above both ankles (walks and runs; a running heel may pass the knee)
    for a, b_ in [("head", "thorax"), ("thorax", "pelvis"), ("pelvis", "left_ankle"), ("pelvis", "right_ankle")]:
        assert (z[:, n[a]] > z[:, n[b_]]).mean() > 0.98, (a, b_)
    stature = z[:, n["head"]] - np.minimum(z[:, n["left_ankle"]], z[:, n["right_ankle"]])
    assert 1300 < np.median(stature) < 1900
    # left is on the left: forward = walking direction (independent of the skeleton's sides)
    v = np.gradient(X[:, n["pelvis"], :2], axis=0)
    fwd = v / np.linalg.norm(v, axis=-1, keepdims=True)
    left_dir = np.stack([-fwd[:, 1], fwd[:, 0]], -1)  # up x forward, with up = +Z
    lr = X[:, n["left_hip"], :2] - X[:, n["right_hip"], :2]
    assert ((lr * left_dir).sum(-1) > 0).mean() > 0.9
    ls = X[:, n["left_shoulder"], :2] - X[:, n["right_shoulder"], :2]
    assert ((ls * left_dir).sum(-1) > 0).mean() > 0.9
