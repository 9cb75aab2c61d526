"""BVH files in the conventions of real exporters, written by the test from one known skeleton (never copied
files): Bandai Namco (6 channels on every joint), PyMO/bvh-toolbox (root OFFSET = rest height), Mixamo
(``mixamorig:`` names, HeadTop_End joint), Biovision/mocapbank, LAFAN1 (no head End Site), Z-up and X-up files,
delta position channels; plus the plausibility checks, outlier frames and header edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mvtools.cli.main import cli
from mvtools.dataset import DatasetError, joints_to_numpy, read_manifest, read_poses3d
from mvtools.ingest.bvh.ingest import bvh_to_h36m17, ingest_bvh, subject_from_rule, subject_of
from mvtools.ingest.bvh.joint_maps import choose_joint_map, load_joint_map
from mvtools.ingest.bvh.reader import parse_bvh
from mvtools.skeleton import H36M17_NAMES

IDX = {n: i for i, n in enumerate(H36M17_NAMES)}

# role, parent, offset (cm, Y up, facing +Z, left = +X), End Site offset or None
SKEL = [
    ("Hips", None, (0, 0, 0), None),
    ("LeftUpLeg", "Hips", (9, -6, 0), None),
    ("LeftLeg", "LeftUpLeg", (0, -43, 0), None),
    ("LeftFoot", "LeftLeg", (0, -42, 0), None),
    ("LeftToe", "LeftFoot", (0, -6, 13), (0, 0, 5)),
    ("RightUpLeg", "Hips", (-9, -6, 0), None),
    ("RightLeg", "RightUpLeg", (0, -43, 0), None),
    ("RightFoot", "RightLeg", (0, -42, 0), None),
    ("RightToe", "RightFoot", (0, -6, 13), (0, 0, 5)),
    ("Spine", "Hips", (0, 10, 0), None),
    ("Spine1", "Spine", (0, 12, 0), None),
    ("Neck", "Spine1", (0, 28, 0), None),
    ("Head", "Neck", (0, 10, 2), (0, 18, 0)),
    ("LeftShoulder", "Spine1", (4, 24, 0), None),
    ("LeftArm", "LeftShoulder", (14, 0, 0), None),
    ("LeftForeArm", "LeftArm", (29, 0, 0), None),
    ("LeftHand", "LeftForeArm", (25, 0, 0), (8, 0, 0)),
    ("RightShoulder", "Spine1", (-4, 24, 0), None),
    ("RightArm", "RightShoulder", (-14, 0, 0), None),
    ("RightForeArm", "RightArm", (-29, 0, 0), None),
    ("RightHand", "RightForeArm", (-25, 0, 0), (-8, 0, 0)),
]
REST_HEIGHT = 98.0  # cm: root above the floor; the toes touch it (lowest point y = 1 cm)
FEMUR, TIBIA, HUMERUS = 430.0, 420.0, 290.0  # mm

BANDAI = {
    "Spine1": "Chest",
    "LeftShoulder": "Shoulder_L",
    "LeftArm": "UpperArm_L",
    "LeftForeArm": "LowerArm_L",
    "LeftHand": "Hand_L",
    "LeftUpLeg": "UpperLeg_L",
    "LeftLeg": "LowerLeg_L",
    "LeftFoot": "Foot_L",
    "LeftToe": "Toes_L",
}
BANDAI.update({k.replace("Left", "Right"): v[:-1] + "R" for k, v in list(BANDAI.items()) if k.startswith("Left")})
BIOVISION = {
    "LeftUpLeg": "LeftHip",
    "LeftLeg": "LeftKnee",
    "LeftFoot": "LeftAnkle",
    "Spine": "Chest",
    "Spine1": "Chest2",
    "LeftShoulder": "LeftCollar",
    "LeftArm": "LeftShoulder",
    "LeftForeArm": "LeftElbow",
    "LeftHand": "LeftWrist",
}
BIOVISION.update(
    {k.replace("Left", "Right"): v.replace("Left", "Right") for k, v in list(BIOVISION.items()) if k.startswith("Left")}
)
ROT = "Zrotation Yrotation Xrotation"


def _to_file_axes(v, up):
    x, y, z = v
    return {"y": (x, y, z), "z": (x, -z, y), "x": (y, x, -z)}[up]


def export(
    names=None,
    *,
    T=60,
    six_all=False,
    pos_value="offset",
    root_offset_height=False,
    up="y",
    scale=1.0,
    head_top_joint=False,
    head_end=True,
    prefix="",
    knee_deg=25.0,
    frame_time=1 / 30,
    zero_offsets=False,
    header="",
):
    """A walking-in-place-and-translating person as BVH text in a given exporter's convention.

    six_all: 6 channels (positions first) on every joint, values ``pos_value`` = ``offset`` (Bandai: the local
    translation itself) or ``zero`` (deltas). root_offset_height: root OFFSET = rest height (PyMO, bvh-toolbox)
    while the root channels stay absolute. up: the file's up axis. scale: file units per cm.
    """
    names = names or {}
    nm = {r: prefix + names.get(r, r) for r, *_ in SKEL}
    kids = {r: [c for c, p, *_ in SKEL if p == r] for r, *_ in SKEL}
    info = {r: (o, e) for r, _, o, e in SKEL}
    order, out = [], ["HIERARCHY"]
    if header:
        out.insert(0, header)

    def vec(v):
        f = _to_file_axes(np.asarray(v, float) * scale, up)
        return " ".join(f"{c:.6f}" for c in f)

    def emit(r, depth):
        ind = "  " * depth
        o, e = info[r]
        if depth == 0:
            o = (0, REST_HEIGHT, 0) if root_offset_height else (0, 0, 0)
        if zero_offsets and depth:
            o_txt = vec((0, 0, 0))
        else:
            o_txt = vec(o)
        out.extend([f"{ind}{'ROOT' if depth == 0 else 'JOINT'} {nm[r]}", f"{ind}{{", f"{ind}  OFFSET {o_txt}"])
        six = depth == 0 or six_all
        out.append(f"{ind}  CHANNELS " + ("6 Xposition Yposition Zposition " if six else "3 ") + ROT)
        order.append((r, six))
        for c in kids[r]:
            emit(c, depth + 1)
        if r == "Head" and head_top_joint:
            out.extend(
                [
                    f"{ind}  JOINT {prefix}HeadTop_End",
                    f"{ind}  {{",
                    f"{ind}    OFFSET {vec(e)}",
                    f"{ind}    CHANNELS 3 {ROT}",
                    f"{ind}    End Site",
                    f"{ind}    {{",
                    f"{ind}      OFFSET 0 0 0",
                    f"{ind}    }}",
                    f"{ind}  }}",
                ]
            )
            order.append(("HeadTop", False))
        elif e is not None and (r != "Head" or head_end):
            out.extend([f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET {vec(e)}", f"{ind}  }}"])
        out.append(f"{ind}}}")

    emit("Hips", 0)
    out += ["MOTION", f"Frames: {T}", f"Frame Time: {frame_time:.8f}"]
    for t in range(T):
        phase = 2 * np.pi * t / 30
        row = []
        for r, six in order:
            if six:
                if r == "Hips":
                    p = (-100 + 200 * t / max(T - 1, 1), REST_HEIGHT, 0)
                else:
                    p = info[r][0] if pos_value == "offset" else (0, 0, 0)
                row += list(_to_file_axes(np.asarray(p, float) * scale, up))
            knee = knee_deg * (0.5 + 0.5 * np.sin(phase + (np.pi if r.startswith("Right") else 0)))
            rx = knee if r in ("LeftLeg", "RightLeg") and up == "y" else 0.0
            row += [0.0, 0.0, rx]  # Z Y X
        out.append(" ".join(f"{v:.6f}" for v in row))
    return "\n".join(out) + "\n"


def _file(tmp_path, text, name="clip.bvh"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _check_person(X, rep, femur=FEMUR, tibia=TIBIA, humerus=HUMERUS):
    m = rep["plausibility"]
    assert m["femur_mm"] == pytest.approx(femur, abs=1.0)
    assert m["tibia_mm"] == pytest.approx(tibia, abs=1.0)
    assert m["humerus_mm"] == pytest.approx(humerus, abs=1.0)
    assert 1500 < m["stature_mm"] < 1900 and m["upright_fraction"] == 1.0
    assert rep["plausibility_problems"] == []
    # upright in Z: head above thorax above pelvis above the ankles; left on +X (facing -Y after Y->Z)
    z = X[..., 2]
    assert (z[:, IDX["head"]] > z[:, IDX["thorax"]]).all() and (z[:, IDX["thorax"]] > z[:, IDX["pelvis"]]).all()
    assert (z[:, IDX["pelvis"]] > z[:, IDX["left_ankle"]]).all()


def test_bandai_six_channels_on_every_joint(tmp_path):
    """Bandai Namco: every joint has 6 channels whose positions equal the OFFSET. Read as the local translation
    (Blender, LAFAN1), bones keep their length; read as OFFSET + channels they double, which must fail loudly."""
    f = _file(tmp_path, export(BANDAI, six_all=True))
    X, P, rep = bvh_to_h36m17(f, fps=0)
    assert rep["joint_map"] == "bandai" and rep["position_channels"] == "replace" and rep["units"] == "cm"
    _check_person(X, rep)
    with pytest.raises(DatasetError, match=r"femur 860 mm .*position channels: add") as e:
        bvh_to_h36m17(f, fps=0, position_channels="add")
    assert "--units" in str(e.value) and "--up-axis" in str(e.value)
    X2, _, rep2 = bvh_to_h36m17(f, fps=0, position_channels="add", check=False)
    assert rep2["plausibility"]["femur_mm"] == pytest.approx(2 * FEMUR, abs=2)


def test_units_from_position_channels_when_offsets_are_zero(tmp_path):
    """All non-root OFFSETs 0, the 6-channel positions carry the skeleton: units come from the posed extent."""
    f = _file(tmp_path, export(BANDAI, six_all=True, zero_offsets=True, scale=0.01))  # metres
    X, _, rep = bvh_to_h36m17(f, fps=0)
    assert rep["units"] == "m" and "posed extent 1.7" in rep["units_how"]
    _check_person(X, rep)


def test_delta_position_channels_are_added(tmp_path):
    """6 channels everywhere but the non-root positions stay 0 (deltas): auto reads OFFSET + channels."""
    X, _, rep = bvh_to_h36m17(_file(tmp_path, export(six_all=True, pos_value="zero")), fps=0)
    assert rep["position_channels"] == "add" and rep["joint_map"] == "lafan1"
    _check_person(X, rep)


def test_root_offset_is_rest_height_pymo_style(tmp_path):
    """PyMO / bvh-toolbox: root OFFSET = rest height and absolute root channels: the person stands on the file's
    floor (with --floor file), not 1 m above it."""
    d = tmp_path / "in"
    d.mkdir()
    _file(d, export(root_offset_height=True))
    out = tmp_path / "ds"
    ingest_bvh(d, out, rig="h36m:S1", floor="file", random_yaw=False, detector_noise="none", min_views=1)
    X = joints_to_numpy(read_poses3d(out)["joints3d"], 3)
    rep = read_manifest(out)["files"][0]
    assert rep["floor_shift_mm"] == 0.0
    assert X[..., 2].min() == pytest.approx(70.0, abs=1)  # ankles 7 cm above the floor, not ~1 m
    assert X[:, IDX["head"], 2].max() == pytest.approx(1760, abs=5)


@pytest.mark.parametrize("up", ["z", "x"])
def test_up_axis_detected(tmp_path, up):
    f = _file(tmp_path, export(up=up, knee_deg=0))
    X, _, rep = bvh_to_h36m17(f, fps=0)
    assert rep["up_axis"] == up and rep["up_axis_how"].startswith(f"detected +{up.upper()}")
    _check_person(X, rep)
    with pytest.raises(DatasetError, match=r"0% of frames upright.*up axis: y \(given"):
        bvh_to_h36m17(f, fps=0, up_axis="y")


def test_mixamo_names_and_head_top_joint(tmp_path):
    text = export(prefix="mixamorig:", head_top_joint=True, scale=1.0)
    X, _, rep = bvh_to_h36m17(_file(tmp_path, text), fps=0)
    assert rep["joint_map"] == "mixamo" and rep["derived_joints"] == []
    _check_person(X, rep)
    head_top = X[:, IDX["head"]]
    neck = X[:, IDX["neck"]]  # Head joint
    np.testing.assert_allclose(np.linalg.norm(head_top - neck, axis=-1), 180.0, atol=1e-6)


def test_biovision_names_in_inches(tmp_path):
    X, _, rep = bvh_to_h36m17(_file(tmp_path, export(BIOVISION, scale=1 / 2.54)), fps=0)
    assert rep["joint_map"] == "biovision" and rep["units"] == "inch"
    _check_person(X, rep)


def test_lafan1_without_head_end_site_derives_head_top(tmp_path):
    """No head End Site: head top = Head + 1.5 (Head - Neck), as the map says."""
    X, P, rep = bvh_to_h36m17(_file(tmp_path, export(six_all=True, head_end=False)), fps=0)
    assert rep["joint_map"] == "lafan1" and rep["derived_joints"] == ["head"]
    neck, head = X[:, IDX["thorax"]], X[:, IDX["neck"]]  # Neck, Head joints
    np.testing.assert_allclose(X[:, IDX["head"]], head + 1.5 * (head - neck), atol=1e-6)
    _check_person(X, rep)


def test_humanik_map_and_documented_json_format_still_work(tmp_path):
    f = _file(tmp_path, export())
    assert choose_joint_map(parse_bvh(f.read_text()).names)["name"] == "lafan1"  # has LeftToe, Spine... but
    jm = tmp_path / "map.json"  # a map in the documented format, with an explicit up_axis, as before
    j = {k: v for k, v in load_joint_map("humanik")["joints"].items()}
    jm.write_text(
        json.dumps(
            {
                "name": "mine",
                "up_axis": "y",
                "joints": {
                    k: (next(iter(v)) if len(v) == 1 else (list(v) if len(set(v.values())) == 1 else v))
                    for k, v in j.items()
                },
            }
        )
    )
    X, _, rep = bvh_to_h36m17(f, fps=0, joint_map=str(jm))
    assert rep["joint_map"] == "mine" and rep["up_axis_how"] == "given by joint map mine"
    _check_person(X, rep)
    X2, _, _ = bvh_to_h36m17(f, fps=0, joint_map="humanik")
    np.testing.assert_allclose(X, X2)


def test_outlier_frame_dropped_with_a_note(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MVTOOLS_QUIET", raising=False)
    lines = export(T=40).splitlines()
    k = lines.index("MOTION") + 3 + 17  # source frame 17
    vals = lines[k].split()
    vals[0] = "1e300"
    lines[k] = " ".join(vals)
    d = tmp_path / "in"
    d.mkdir()
    _file(d, "\n".join(lines) + "\n")
    X, _, rep = bvh_to_h36m17(d / "clip.bvh", fps=0)
    assert rep["outlier_frames"] == [17] and rep["output_frames_unusable"] == 1
    assert np.isnan(X[17]).all() and np.isfinite(np.delete(X, 17, 0)).all()
    _check_person(np.delete(X, 17, 0), rep)
    out = tmp_path / "ds"
    s = ingest_bvh(d, out, detector_noise="none", min_views=1, fps=0)
    assert 17 not in set(read_poses3d(out)["frame"].to_pylist()) and s["frames_kept"] >= 1
    assert "1 source frame(s) with a channel far outside" in capsys.readouterr().err


@pytest.mark.parametrize("ft", ["inf", "1e-300", "nan", "0"])
def test_frame_time_out_of_range(ft):
    text = export(T=3).replace("Frame Time: 0.03333333", f"Frame Time: {ft}")
    with pytest.raises(DatasetError, match=r"line \d+: Frame Time .* not a plausible frame period"):
        parse_bvh(text)


def test_end_site_never_takes_a_real_joint_name():
    text = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 3 Xposition Yposition Zposition
  End Site
  {
    OFFSET 0 1 0
  }
  JOINT Hips_End
  {
    OFFSET 0 2 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {
      OFFSET 0 3 0
    }
  }
}
MOTION
Frames: 1
Frame Time: 0.01
0 0 0 0 0 0
"""
    b = parse_bvh(text)
    assert b.names == ["Hips", "Hips_End2", "Hips_End", "Hips_End_End"]
    assert list(b.end_site) == [False, True, False, True]


def test_implausible_height_surfaced_and_cli_message(tmp_path, monkeypatch):
    """A 3.5 m giant (doubled Bandai bones) fails through the CLI with the numbers, not with a visibility error;
    with --no-check-plausibility it is written and the warning is printed."""
    monkeypatch.delenv("MVTOOLS_QUIET", raising=False)
    d = tmp_path / "in"
    d.mkdir()
    _file(d, export(BANDAI, six_all=True))
    out = tmp_path / "ds"
    r = CliRunner().invoke(
        cli, ["ingest", "bvh", str(d), "--out", str(out), "--position-channels", "add", "--detector-noise", "none"]
    )
    assert r.exit_code == 1 and "implausible person" in r.output and "stature 3" in r.output
    assert "Traceback" not in r.output and not out.exists()
    r = CliRunner().invoke(
        cli,
        [
            "ingest",
            "bvh",
            str(d),
            "--out",
            str(out),
            "--position-channels",
            "add",
            "--detector-noise",
            "none",
            "--no-check-plausibility",
            "--min-views",
            "1",
            "--floor",
            "lowest",
        ],
    )
    assert "warning:" in r.output and "implausible: femur 860 mm" in r.output


def test_subject_grouping_by_folder_and_regex(tmp_path):
    rule = subject_from_rule("folder")
    assert subject_of(tmp_path / "actor_a" / "walk.bvh", [], rule) == "actor_a"
    rx = subject_from_rule(r"_(?P<subject>subject\d+)$")
    assert subject_of("dataset-1_walk_subject2.bvh", [], rx) == "subject2"
    assert subject_of("other.bvh", [], rx) == "other"  # no match: the default
    assert subject_of("x_subject2.bvh", [("x_*", "S9")], rx) == "S9"  # --subject-map first
    with pytest.raises(ValueError, match="not a regular expression"):
        subject_from_rule("(")
    for actor in ("a", "b"):
        (tmp_path / "in" / actor).mkdir(parents=True)
        for clip in ("walk", "run"):
            _file(tmp_path / "in" / actor, export(T=20), f"{clip}.bvh")
    s = ingest_bvh(
        tmp_path / "in", tmp_path / "ds", subject_from="folder", detector_noise="none", min_views=1, split="none"
    )
    assert s["subjects"] == ["a", "b"]
