"""Safe by default (docs/reliability.md): the output guard, the atomic swap under real SIGKILLs, no code from data
files, and values that would poison a dataset refused at the door."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv  # noqa: F401
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import mvtools.io as mio
from mvtools import dataset as d
from mvtools.camera import project
from mvtools.cli.main import cli
from mvtools.h36m_cameras import h36m_cameras
from mvtools.io import OutputError, claim_output, lock_output, swap_into_place

ROOT = Path(__file__).resolve().parents[1]


class _FrameLifter:
    """Stands in for a loaded single-frame lifting branch where a test replaces the network's output."""

    def receptive_field(self) -> int:
        return 1


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MVTOOLS_QUIET": "1", "OMP_NUM_THREADS": "1"}
    env.update(extra)
    return env


def _small_ds(out, seed=0, frames=12, **kw):
    from mvtools.synth.dataset import synth_dataset

    return synth_dataset(
        out,
        subjects=["S1", "S9"],
        sequences_per_subject=1,
        frames=frames,
        seed=seed,
        noise=None,
        command="pytest",
        **kw,
    )


def _dataset_rows(ds):
    return d.read_poses3d(ds).num_rows


# ----------------------------------------------------------------------------- 1. the output guard
def test_foreign_directory_is_never_replaced(tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="not written by mvtools"):
            _small_ds(thesis, overwrite=overwrite)
    assert (thesis / "chapter1.tex").read_text() == "precious" and len(list(tmp_path.iterdir())) == 1
    r = CliRunner().invoke(cli, ["synth", "dataset", "--out", str(thesis), "--frames", "5", "--overwrite"])
    assert r.exit_code == 1 and "refusing to replace it" in r.output and "Traceback" not in r.output


def test_earlier_output_replaced_only_with_overwrite_and_same_kind(tmp_path):
    ds = _small_ds(tmp_path / "ds")
    before = (ds / "manifest.json").read_text()
    with pytest.raises(OutputError, match="pass --overwrite"):
        _small_ds(ds, seed=1)
    assert (ds / "manifest.json").read_text() == before
    _small_ds(ds, seed=1, overwrite=True)
    assert json.loads((ds / "manifest.json").read_text())["synth"]["seed"] == 1
    # a raw synth tree is another kind: refused as a dataset target even with --overwrite
    from mvtools.synth.h36m import synth_h36m

    raw = tmp_path / "raw"
    synth_h36m(raw, subjects=["S1"], sequences=1, frames=5, detections=False)
    with pytest.raises(OutputError, match="an mvtools synth-h36m"):
        _small_ds(raw, overwrite=True)
    with pytest.raises(OutputError, match="pass --overwrite"):
        synth_h36m(raw, subjects=["S1"], sequences=1, frames=5, detections=False)
    synth_h36m(raw, subjects=["S1"], sequences=1, frames=6, detections=False, overwrite=True)


def test_output_equal_to_containing_or_inside_an_input_is_refused(tmp_path):
    from mvtools.ingest.h36m.reader import ingest_h36m
    from mvtools.synth.h36m import synth_h36m

    raw = tmp_path / "raw"
    synth_h36m(raw, subjects=["S1"], sequences=1, frames=5, detections=False)
    snapshot = sorted(p.relative_to(raw) for p in raw.rglob("*"))
    for out, how in [(raw, "is"), (raw / "ds", "lies inside"), (tmp_path, "contains")]:
        with pytest.raises(OutputError, match=f"the output {how} the input"):
            ingest_h36m(raw, out, overwrite=True)
    assert sorted(p.relative_to(raw) for p in raw.rglob("*")) == snapshot
    r = CliRunner().invoke(cli, ["ingest", "h36m", str(raw), "--out", str(raw), "--overwrite"])
    assert r.exit_code == 1 and "would destroy the input" in r.output


def test_every_writing_command_has_the_same_overwrite_flag():
    runner = CliRunner()
    for args in (
        ["ingest", "h36m"],
        ["ingest", "bvh"],
        ["ingest", "3dhp"],
        ["synth", "h36m"],
        ["synth", "dataset"],
        ["augment"],
        ["calibrate"],
        ["predict"],
        ["demo"],
    ):
        out = runner.invoke(cli, args + ["--help"]).output
        assert "--overwrite" in out and "only one that mvtools wrote" in " ".join(out.split()), args


def test_second_writer_fails_at_once(tmp_path):
    out = tmp_path / "ds"
    with lock_output(out):  # another process's lock (flock is per open file description)
        t0 = time.monotonic()
        with pytest.raises(OutputError, match="another mvtools process is writing"):
            _small_ds(out)
        assert time.monotonic() - t0 < 5
        r = subprocess.run(
            [sys.executable, "-m", "mvtools", "synth", "dataset", "--out", str(out), "--frames", "5"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 1 and "another mvtools process is writing" in r.stderr
    assert not out.exists()
    _small_ds(out)  # lock released and its file removed
    assert not list(tmp_path.glob(".ds.lock"))


def test_leftovers_of_a_killed_run_are_cleaned_or_restored(tmp_path):
    ds = _small_ds(tmp_path / "ds")
    (tmp_path / ".ds.tmp-deadbeef").mkdir()
    (tmp_path / ".ds.tmp-deadbeef" / "junk").write_text("x")
    _small_ds(ds, seed=2, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    # a fallback swap killed between its renames: no ds, its old copy beside it -> restored on the next claim
    os.rename(ds, tmp_path / ".ds.old-12345678")
    claim_output(ds, "dataset", in_place=True).release()
    assert _dataset_rows(ds) == 24 and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_demo_reruns_into_its_own_output(tmp_path, monkeypatch):
    import mvtools.demo as demo

    def fake(out, *a):
        (out / "run-x").mkdir()
        (out / "summary.json").write_text("{}")
        return {"ok": True}

    monkeypatch.setattr(demo, "_run_demo", fake)
    out = tmp_path / "demo"
    demo.run_demo(out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="pass --overwrite"):
        demo.run_demo(out)
    assert demo.run_demo(out, overwrite=True) == {"ok": True}
    assert (out / "notes.txt").read_text() == "mine" and (out / "demo.json").exists()
    with pytest.raises(OutputError, match="not written by mvtools"):
        demo.run_demo(tmp_path, overwrite=True)


# ----------------------------------------------------------------------------- 3. the atomic swap
def _tree(path, tag):
    path.mkdir()
    (path / "tag").write_text(tag)
    (path / "sub").mkdir()
    (path / "sub" / "data").write_text(tag * 100)
    return path


def test_swap_is_atomic_for_every_observer(tmp_path, monkeypatch):
    """After every file-system call the swap makes, ``out`` exists and is wholly old or wholly new. Replacing the
    exchange by two renames (or rmtree + rename) fails this test."""
    out = _tree(tmp_path / "out", "old")
    new = _tree(tmp_path / ".out.tmp-1", "new")
    seen = []

    def check(name, fn):
        def wrapper(*a, **k):
            r = fn(*a, **k)
            tag = (out / "tag").read_text()  # FileNotFoundError if out is missing
            assert (out / "sub" / "data").read_text() == tag * 100
            seen.append((name, tag))
            return r

        return wrapper

    monkeypatch.setattr(mio, "_renameat2", check("exchange", mio._renameat2))
    for name in ("rename", "replace"):
        monkeypatch.setattr(mio.os, name, check(name, getattr(os, name)))
    monkeypatch.setattr(mio.shutil, "rmtree", check("rmtree", shutil.rmtree))
    swap_into_place(new, out)
    assert seen and seen[-1][1] == "new" and (out / "tag").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


SWAP = (
    "import sys; from pathlib import Path; from mvtools.io import swap_into_place as s; s(Path(sys.argv[1]), "
    "Path(sys.argv[2]))"
)


def _run_until_paused(cmd, point, env=None, timeout=120):
    """Start ``cmd``, wait until it reports pausing at ``point``, SIGKILL it."""
    p = subprocess.Popen(
        cmd,
        env=_env(MVTOOLS_TEST_PAUSE_AT=point, **(env or {})),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    t0 = time.monotonic()
    for line in p.stderr:
        if f"MVTOOLS_PAUSED {point}" in line:
            break
        assert time.monotonic() - t0 < timeout
    else:
        p.wait()
        raise AssertionError(f"{cmd} never reached {point} (exit {p.returncode})")
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL


@pytest.mark.parametrize("fallback", [False, True])
def test_killed_swap_leaves_old_or_new(tmp_path, fallback):
    out = _tree(tmp_path / "out", "old")
    new = _tree(tmp_path / ".out.tmp-1", "new")
    env = {"MVTOOLS_NO_RENAME_EXCHANGE": "1"} if fallback else {}
    point = "swap:between-renames" if fallback else "swap:exchanged"
    _run_until_paused([sys.executable, "-c", SWAP, str(new), str(out)], point, env)
    if fallback:
        assert not out.exists()  # the two-rename window: recovered by the next run on out
    else:
        assert (out / "tag").read_text() == "new"  # exchanged in one call; only the old copy is left over
    mio.recover_output(out)  # what the next run on out does first (claim_output)
    assert (out / "tag").read_text() == ("old" if fallback else "new")
    assert (out / "sub" / "data").read_text() == (out / "tag").read_text() * 100
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# ----------------------------------------------------------------------------- 3. augment and calibrate, killed
def _check_augment_invariant(ds):
    """Every virtual view's 2D equals the projection of the 3D through the camera stored for it, and the pair
    shards and the dataset manifest describe the same augment run."""
    cams = {(c.subject, c.camera): c for c in d.read_cameras(ds, source="virtual")}
    v2 = d.read_poses2d(ds, source="virtual")
    p3 = d.read_poses3d(ds).to_pandas()
    X = {
        (r.subject, r.action, r.subaction, r.frame): np.asarray(r.joints3d, float).reshape(17, 3)
        for r in p3.itertuples()
    }
    uv = d.joints_to_numpy(v2["joints2d"], 2)
    rows = v2.select(["subject", "action", "subaction", "frame", "camera"]).to_pylist()
    assert len(rows) > 0
    for r, u in zip(rows, uv, strict=True):
        cam = cams[r["subject"], r["camera"]]  # KeyError: 2D of a camera that is not stored
        np.testing.assert_allclose(u, project(X[r["subject"], r["action"], r["subaction"], r["frame"]], cam), atol=1e-2)
    m = d.read_manifest(ds)
    pm = json.loads((ds / "pairs" / "manifest.json").read_text())
    assert (pm["seed"], pm["layout"], pm["virtual_views"]) == (
        m["augment"]["seed"],
        m["augment"]["layout"],
        m["augment"]["virtual_views"],
    )
    assert len(cams) == 2 * pm["virtual_views"] and m["rows"]["poses2d"]["virtual"] == v2.num_rows
    for s in pm["shards"]:
        assert pq.read_metadata(ds / "pairs" / s["path"]).num_rows == s["rows"]
    return pm["seed"]


@pytest.fixture(scope="module")
def augmented(tmp_path_factory):
    from mvtools.augment import augment

    ds = _small_ds(tmp_path_factory.mktemp("aug") / "ds")
    augment(ds, virtual_views=2, layout="ring", seed=0, pairs_per_frame=2)
    assert _check_augment_invariant(ds) == 0
    return ds


AUGMENT_B = [
    "augment",
    "--virtual-views",
    "3",
    "--layout",
    "random",
    "--seed",
    "1",
    "--pairs-per-frame",
    "2",
    "--overwrite",
]


@pytest.mark.parametrize(
    "point",
    [
        "augment:pairs-written",
        "augment:virtual-2d-written",
        "augment:cameras-written",
        "augment:before-commit",
        "swap:exchanged",
    ],
)
def test_augment_killed_at_a_commit_point_leaves_old_or_new(augmented, tmp_path, point):
    ds = tmp_path / "ds"
    shutil.copytree(augmented, ds)
    _run_until_paused([sys.executable, "-m", "mvtools", *AUGMENT_B[:1], str(ds), *AUGMENT_B[1:]], point)
    seed = _check_augment_invariant(ds)  # right after the kill, before any recovery
    assert seed == (1 if point == "swap:exchanged" else 0)
    from mvtools.augment import augment

    augment(ds, virtual_views=3, layout="random", seed=1, pairs_per_frame=2, overwrite=True)  # cleans, commits
    assert _check_augment_invariant(ds) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_augment_killed_at_random_times(augmented, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(augmented, ds)
    for delay in (1.5, 2.5, 3.5):
        p = subprocess.Popen(
            [sys.executable, "-m", "mvtools", *AUGMENT_B[:1], str(ds), *AUGMENT_B[1:]],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert _check_augment_invariant(ds) in (0, 1)


def test_calibrate_killed_before_commit_leaves_old_state(tmp_path):
    from mvtools.calibration.pipeline import calibrate_from_joints

    ds = _small_ds(tmp_path / "ds", frames=150)
    calibrate_from_joints(ds, subjects=["S1"], source="gt", refine=False, max_frames=150)
    before = {p: (ds / p).read_bytes() for p in ("cameras.parquet", "calibration_report.json", "manifest.json")}
    _run_until_paused(
        [
            sys.executable,
            "-m",
            "mvtools",
            "calibrate",
            "--from-joints",
            str(ds),
            "--subjects",
            "S1",
            "--source",
            "gt",
            "--no-refine",
            "--seed",
            "3",
            "--overwrite",
            "--max-frames",
            "150",
        ],
        "calibrate:before-commit",
    )
    assert {p: (ds / p).read_bytes() for p in before} == before


# ----------------------------------------------------------------------------- 2. no code runs from data files
class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _planted_npz(path, marker, where):
    """A VideoPose3D-layout file (2D and 3D) with a payload in the positions or in the metadata."""
    a = np.zeros((5, 17, 2), np.float32)
    pos2, pos3 = {"S1": {"Walking": [a, a, a, a]}}, {"S1": {"Walking": np.zeros((5, 32, 3), np.float32)}}
    meta = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": [[1], [4]]}
    if where == "positions":
        pos2["S1"]["Walking"][1] = Payload(marker)
        pos3["S1"]["Walking"] = [Payload(marker)]
    else:
        meta["extra"] = Payload(marker)
    np.savez_compressed(path, positions_2d=pos2, positions_3d=pos3, metadata=meta)
    return path


@pytest.mark.parametrize("where", ["positions", "metadata"])
def test_planted_pickle_payload_never_runs(tmp_path, where, monkeypatch):
    from mvtools.evaluate import predict as pr
    from mvtools.ingest.h36m.reader import load_videopose3d_2d
    from mvtools.synth.h36m import synth_h36m

    marker = tmp_path / "marker"
    f = _planted_npz(tmp_path / "det.npz", marker, where)
    with pytest.raises(d.DatasetError, match=r"det\.npz: .*builtins\.exec.*refusing to load"):
        load_videopose3d_2d(f)
    raw = tmp_path / "raw"
    synth_h36m(raw, subjects=["S1"], sequences=1, frames=5, detections=False)
    r = CliRunner().invoke(cli, ["ingest", "h36m", str(raw), "--out", str(tmp_path / "ds"), "--detections", str(f)])
    assert r.exit_code == 1 and "refusing to load" in r.output
    r = CliRunner().invoke(cli, ["ingest", "h36m", "--from-videopose3d", str(f), "--out", str(tmp_path / "ds")])
    assert r.exit_code == 1 and "refusing to load" in r.output
    monkeypatch.setattr("mvtools.train.inference.load_lifter", lambda *a: (_FrameLifter(), {}))
    with pytest.raises(d.DatasetError, match="refusing to load"):
        pr.predict(tmp_path / "run", f, tmp_path / "out.npz", cameras="h36m")
    assert not marker.exists() and not (tmp_path / "ds").exists()


def test_videopose3d_conventions_still_load(tmp_path):
    """What VideoPose3D's prepare_data_*.py scripts save: dicts of dicts of float32 arrays (or lists of 4 arrays
    / None), metadata with ints, lists and numpy scalars."""
    from collections import OrderedDict

    from mvtools.ingest.h36m.reader import load_videopose3d_2d, load_videopose3d_3d

    a = np.random.default_rng(0).random((6, 17, 2)).astype(np.float32)
    np.savez_compressed(
        tmp_path / "d2.npz",
        positions_2d={"S1": OrderedDict(Walking=[a, None, a, a])},
        metadata={"num_joints": np.int64(17), "keypoints_symmetry": [[4, 5, 6], [1, 2, 3]], "layout_name": "h36m"},
    )
    data, meta = load_videopose3d_2d(tmp_path / "d2.npz")
    assert np.array_equal(data["S1"]["Walking"][0], a) and meta["num_joints"] == 17
    np.savez_compressed(tmp_path / "d3.npz", positions_3d={"S1": {"Walking": np.zeros((4, 32, 3), np.float32)}})
    assert load_videopose3d_3d(tmp_path / "d3.npz")["S1"]["Walking"].shape == (4, 32, 3)


def test_names_from_file_contents_cannot_reach_paths(tmp_path):
    cams = [c for c in h36m_cameras() if c.subject == "S1"]
    X = np.zeros((3, 17, 3)) + [0, 0, 1000]
    for bad in ("../evil", "a/b", ".hidden", "_x", "", "S=1"):
        with d.DatasetWriter(tmp_path / "ds") as w, pytest.raises(d.DatasetError, match="cannot be used in a file"):
            w.add_poses3d(bad, d.poses3d_table("Walk", 1, "Walk", np.arange(3), X))
    assert not (tmp_path / "evil").exists() and list(tmp_path.iterdir()) == []
    from mvtools.augment.pairs import shard_path

    pdir = tmp_path / "pairs"
    pdir.mkdir()
    assert shard_path(pdir, "train/part-00000.parquet") == pdir / "train/part-00000.parquet"
    for bad in ("../../etc/passwd", "/etc/passwd", "train/../../x", None):
        with pytest.raises(d.DatasetError, match="shard path"):
            shard_path(pdir, bad)
    os.symlink("/", pdir / "up")
    with pytest.raises(d.DatasetError, match="leads outside"):
        shard_path(pdir, "up/etc/passwd")
    del cams


# ----------------------------------------------------------------------------- 4. values refused at the door
@pytest.mark.parametrize(
    "value, match", [(1e39, "NaN/inf"), (np.nan, "NaN/inf"), (-1e30, "beyond 100000"), (2e5, "beyond 100000")]
)
def test_poisoned_3d_values_refused_after_the_float32_cast(tmp_path, value, match):
    X = np.zeros((3, 17, 3)) + [0, 0, 1000]
    X[1, 4, 2] = value
    with d.DatasetWriter(tmp_path / "ds") as w, pytest.raises(d.DatasetError, match=match):
        w.add_poses3d("S1", d.poses3d_table("Walk", 1, "Walk 1", np.arange(3), X))
    assert list(tmp_path.iterdir()) == []


def test_confidences_outside_0_1_are_clipped_with_a_warning(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MVTOOLS_QUIET", raising=False)  # an earlier `mvtools -q` in this process may have set it
    cams = [c for c in h36m_cameras() if c.subject == "S1"]
    X = np.zeros((3, 17, 3)) + [0, 0, 1000]
    conf = np.full((3, 17), 0.5)
    conf[0, 0], conf[1, 1] = 1.2, -0.1
    with d.DatasetWriter(tmp_path / "ds") as w:
        w.add_poses3d("S1", d.poses3d_table("Walk", 1, "Walk 1", np.arange(3), X))
        w.add_poses2d(
            "S1",
            d.poses2d_table("Walk", 1, "Walk 1", np.arange(3), cams[0].camera, project(X, cams[0]), conf, "detected"),
        )
        w.set_cameras(cams)
        w.commit(d.base_manifest("t", {"train": ["S1"], "test": []}, 50.0))
    c = d.list_to_numpy(d.read_poses2d(tmp_path / "ds")["confidence"], 17)
    assert c.min() == 0 and c.max() == 1
    assert "2 confidence value(s) outside 0..1 clipped" in capsys.readouterr().err


def _cams_toml(path, fx=1000.0, width=1000, same_pose=False):
    rows = []
    for i in range(2):
        t = [0, 0, 0] if same_pose else [i * 500.0, 0, 0]
        rows.append(
            f'[cam_{i}]\nname = "c{i}"\nsize = [{width}, 1000]\nmatrix = [[{fx}, 0, 500], [0, 1000, 500], '
            f"[0, 0, 1]]\ndistortions = [0, 0, 0, 0, 0]\nrotation = [0.1, 0, 0]\ntranslation = {t}\n"
        )
    path.write_text("\n".join(rows))
    return path


@pytest.mark.parametrize(
    "kw, match",
    [({"fx": 0.0}, "focal lengths must be > 0"), ({"width": 0}, "image size"), ({"same_pose": True}, "same pose")],
)
def test_bad_cameras_refused_by_every_reader(tmp_path, kw, match):
    from mvtools.calibration.toml_io import read_aniposelib_toml
    from mvtools.evaluate.predict import camera_list

    f = _cams_toml(tmp_path / "rig.toml", **kw)
    for read in (read_aniposelib_toml, camera_list):
        with pytest.raises(ValueError, match=match):
            read(f)
    cams = [c for c in h36m_cameras() if c.subject == "S1"]
    with pytest.raises(ValueError, match="same pose"):
        d.cameras_to_table(cams + [cams[0]])


def test_malformed_files_give_one_clear_error(tmp_path):
    runner = CliRunner()
    ds = _small_ds(tmp_path / "ds")
    # a manifest that is a JSON list
    bad = tmp_path / "bad"
    shutil.copytree(ds, bad)
    (bad / "manifest.json").write_text("[1, 2]")
    r = runner.invoke(cli, ["augment", str(bad)])
    assert r.exit_code == 1 and "must be a JSON object" in r.output
    # a cameras.parquet of another schema
    shutil.rmtree(bad)
    shutil.copytree(ds, bad)
    pq.write_table(pa.table({"x": [1, 2]}), bad / "cameras.parquet")
    r = runner.invoke(cli, ["augment", str(bad)])
    assert r.exit_code == 1 and "not an mvtools cameras table" in r.output and "Traceback" not in r.output
    # a truncated Parquet part
    shutil.rmtree(bad)
    shutil.copytree(ds, bad)
    part = next((bad / "poses3d").rglob("*.parquet"))
    part.write_bytes(part.read_bytes()[:200])
    r = runner.invoke(cli, ["augment", str(bad)])
    assert r.exit_code == 1 and "truncated or corrupt" in r.output and "Traceback" not in r.output
    # a TOML whose camera entry is not a table
    (tmp_path / "x.toml").write_text("cam_0 = 5\n")
    r = runner.invoke(cli, ["calibrate", "--import-toml", str(tmp_path / "x.toml"), "--subject", "S1", str(ds)])
    assert r.exit_code == 1 and "must be a [cam_0] table" in r.output


def test_disk_full_is_a_clear_error(tmp_path):
    """RLIMIT_FSIZE stands in for a full disk (EFBIG instead of ENOSPC, the same code path): one line naming the
    file, exit 1, no traceback, nothing committed."""
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); "
        "from mvtools.cli.main import cli; sys.argv = ['mvtools'] + sys.argv[1:]; cli()"
    )
    out = tmp_path / "ds"
    r = subprocess.run(
        [sys.executable, "-c", code, "synth", "dataset", "--out", str(out), "--frames", "300"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "disk full?" in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_a_clear_error(tmp_path):
    for args in (
        ["evaluate", str(tmp_path), str(tmp_path), "--device", "cuda"],
        ["predict", str(tmp_path), __file__, "--out", str(tmp_path / "p.csv"), "--device", "cuda"],
    ):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 1 and "no CUDA device is available" in r.output, r.output


def test_partial_detections_never_switch_silently_to_gt(tmp_path):
    from mvtools.augment import augment

    ds = _small_ds(tmp_path / "ds")
    cams = [c for c in h36m_cameras() if c.subject == "S1"]
    X = d.joints_to_numpy(d.read_poses3d(ds, ["S1"])["joints3d"], 3).astype(float)
    t = d.poses2d_table("Directions", 1, "x", np.arange(len(X)), cams[0].camera, project(X, cams[0]), None, "detected")
    d.replace_poses2d_files(ds, "S1", "detected", t)
    with pytest.raises(d.DatasetError, match="no detected 2D for subject.*S9"):
        augment(ds)


def test_random_bytes_and_fill_values_in_a_cdf_are_refused(tmp_path):
    from mvtools.ingest.h36m.cdf import read_pose_cdf, write_pose_cdf

    rng = np.random.default_rng(0)
    junk = np.frombuffer(rng.bytes(6 * 96 * 8), np.float64).reshape(6, 96)  # 4.5 KiB of random doubles
    junk = np.where(np.isfinite(junk), junk, 1e300)
    with pytest.raises(d.DatasetError, match=r"r\.cdf: 'Pose' (holds NaN/inf|has values beyond)"):
        read_pose_cdf(write_pose_cdf(tmp_path / "r.cdf", junk))
    a = np.zeros((6, 96))
    a[2, 5] = -1e30  # a CDF fill value
    with pytest.raises(d.DatasetError, match=r"f\.cdf: 'Pose' has values beyond 100000 mm .*first at frame 2"):
        read_pose_cdf(write_pose_cdf(tmp_path / "f.cdf", a))


def test_bvh_frame_time_inf_is_a_clear_error(tmp_path):
    from mvtools.ingest.bvh.reader import read_bvh

    f = tmp_path / "a.bvh"
    f.write_text(
        "HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0 0\n  CHANNELS 3 Xposition Yposition Zposition\n"
        "  End Site\n  {\n    OFFSET 0 10 0\n  }\n}\nMOTION\nFrames: 1\nFrame Time: inf\n0 0 0\n"
    )
    with pytest.raises(d.DatasetError, match=r"a\.bvh: line 13: Frame Time inf s is not a plausible frame period"):
        read_bvh(f)


def test_predict_output_file_needs_overwrite_and_is_not_an_input(tmp_path, monkeypatch):
    from mvtools.evaluate import predict as pr

    monkeypatch.setattr("mvtools.train.inference.load_lifter", lambda *a: (_FrameLifter(), {}))
    monkeypatch.setattr("mvtools.train.inference.lift_2d", lambda lift, uv, K, dev, **kw: np.zeros((len(uv), 17, 3)))
    inp = tmp_path / "in.csv"
    cols = {f"{c}{j}": [100.0 + j, 120.0] for j in range(17) for c in "xy"} | {
        k: [1000.0, 1000.0] for k in ("fx", "fy")
    }
    cols |= {"cx": [500.0, 500.0], "cy": [500.0, 500.0]}
    pa.csv.write_csv(pa.table(cols), inp)
    run = tmp_path / "run"
    run.mkdir()
    out = tmp_path / "out.csv"
    (tmp_path / ".out.csv.0123456789ab.tmp").write_text("left by a killed run")
    pr.predict(run, inp, out)
    assert out.exists() and not list(tmp_path.glob(".out.csv*"))
    with pytest.raises(OutputError, match="pass --overwrite"):
        pr.predict(run, inp, out)
    pr.predict(run, inp, out, overwrite=True)
    with pytest.raises(OutputError, match="the output is the input"):
        pr.predict(run, inp, inp, overwrite=True)
    with pytest.raises(OutputError, match="lies inside the input"):
        pr.predict(run, inp, run / "x.csv")
    monkeypatch.setattr(
        "mvtools.train.inference.lift_2d", lambda lift, uv, K, dev, **kw: np.full((len(uv), 17, 3), np.nan)
    )
    with pytest.raises(d.DatasetError, match="NaN/inf 3D for 2 of 2 poses"):
        pr.predict(run, inp, tmp_path / "nan.csv")
    assert not (tmp_path / "nan.csv").exists()


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1.5 MiB tmpfs (a really full disk); skipped where mounting is not allowed (not root, containers)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(mnt)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (needs root); test_disk_full_is_a_clear_error covers the code path")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_enospc_in_augment_leaves_the_dataset_as_it_was(tiny_tmpfs):
    ds = _small_ds(tiny_tmpfs / "ds", frames=100)
    before = {p.relative_to(ds): p.read_bytes() for p in ds.rglob("*") if p.is_file()}
    r = subprocess.run(
        [sys.executable, "-m", "mvtools", "augment", str(ds), "--virtual-views", "16", "--pairs-per-frame", "40"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1 and "No space left on device" in r.stderr and "Traceback" not in r.stderr
    assert f"{ds}: " in r.stderr
    assert {p.relative_to(ds): p.read_bytes() for p in ds.rglob("*") if p.is_file()} == before
    assert [p.name for p in tiny_tmpfs.iterdir()] == ["ds"]


def test_augment_killed_inside_a_fallback_swap_is_recovered(augmented, tmp_path):
    """Without RENAME_EXCHANGE the swap is two renames; a kill between them leaves no dataset, and the next run on
    it (any claim of the output) puts the old one back."""
    from mvtools.augment import augment

    ds = tmp_path / "ds"
    shutil.copytree(augmented, ds)
    _run_until_paused(
        [sys.executable, "-m", "mvtools", *AUGMENT_B[:1], str(ds), *AUGMENT_B[1:]],
        "swap:between-renames",
        {"MVTOOLS_NO_RENAME_EXCHANGE": "1"},
    )
    assert not ds.exists()
    with pytest.raises(OutputError, match="pass --overwrite"):  # recovered, then refused without --overwrite
        augment(ds, virtual_views=3)
    assert _check_augment_invariant(ds) == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_dataset_rewrite_killed_at_random_times_leaves_old_or_new(tmp_path):
    ds = _small_ds(tmp_path / "ds")
    cmd = [
        sys.executable,
        "-m",
        "mvtools",
        "synth",
        "dataset",
        "--out",
        str(ds),
        "--subjects",
        "S1,S9",
        "--sequences",
        "1",
        "--frames",
        "12",
        "--noise",
        "none",
        "--seed",
        "1",
        "--overwrite",
    ]
    for delay in (1.0, 2.0, 3.0):
        p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert d.read_manifest(ds)["synth"]["seed"] in (0, 1) and _dataset_rows(ds) == 24
    _run_until_paused(cmd, "swap:exchanged")
    assert d.read_manifest(ds)["synth"]["seed"] == 1 and _dataset_rows(ds) == 24


def test_bvh_output_inside_the_bvh_folder_is_refused(tmp_path):
    folder = tmp_path / "mocap"
    folder.mkdir()
    (folder / "01_01.bvh").write_text("HIERARCHY\n")
    r = CliRunner().invoke(cli, ["ingest", "bvh", str(folder), "--out", str(folder / "ds")])
    assert r.exit_code == 1 and "lies inside the input" in r.output and not (folder / "ds").exists()


def test_h36m_camera_json_with_bad_intrinsics_is_refused(tmp_path):
    data = json.loads((ROOT / "mvtools" / "data" / "h36m_cameras.json").read_text())
    key = "intrinsics" if "intrinsics" in data else "cameras"
    cid = next(iter(data[key]))
    data[key][cid]["focal_length"] = [0.0, 1000.0]
    f = tmp_path / "cams.json"
    f.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"cams\.json: camera .*focal lengths must be > 0"):
        h36m_cameras(f)
    f.write_text("[]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        h36m_cameras(f)
