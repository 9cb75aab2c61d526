"""The data model: schemas, fixed-size-list round trips, atomic writes, readers in pandas and DuckDB."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mvtools import dataset as d
from mvtools.h36m_cameras import h36m_cameras
from mvtools.io import read_json


def _write(out, rng, fail_after=None):
    cams = [c for c in h36m_cameras() if c.subject in ("S1", "S9")]
    truth = {}
    with d.DatasetWriter(out, overwrite=True) as w:
        for i, (subj, action) in enumerate([("S1", "Walking"), ("S1", "Eating"), ("S9", "Walking")]):
            if fail_after is not None and i == fail_after:
                raise RuntimeError("simulated crash mid-ingest")
            T = 7 + i
            j3 = rng.normal(size=(T, 17, 3)).astype(np.float32) * 500
            j2 = rng.uniform(0, 1000, size=(T, 17, 2)).astype(np.float32)
            cf = rng.uniform(size=(T, 17)).astype(np.float32)
            w.add_poses3d(subj, d.poses3d_table(action, 1, action + " 1", np.arange(T), j3))
            w.add_poses2d(subj, d.poses2d_table(action, 1, action + " 1", np.arange(T), "54138969", j2, cf, "detected"))
            truth[(subj, action)] = (j3, j2, cf)
        w.set_cameras(cams)
        w.commit(d.base_manifest("unit", {"train": ["S1"], "test": ["S9"]}, 50.0, command="test"))
    return truth, cams


def test_round_trip_arrays_cameras_manifest(tmp_path):
    rng = np.random.default_rng(0)
    out = tmp_path / "ds"
    truth, cams = _write(out, rng)
    t3 = d.read_poses3d(out, ["S1"], action="Eating")
    assert np.array_equal(d.joints_to_numpy(t3["joints3d"], 3), truth[("S1", "Eating")][0])
    t2 = d.read_poses2d(out, ["S9"], source="detected")
    assert np.array_equal(d.joints_to_numpy(t2["joints2d"], 2), truth[("S9", "Walking")][1])
    assert np.array_equal(d.list_to_numpy(t2["confidence"], 17), truth[("S9", "Walking")][2])
    back = d.read_cameras(out)
    assert len(back) == len(cams)
    for a, b in zip(back, cams):
        assert a.camera == b.camera and a.subject == b.subject
        assert np.allclose(a.R, b.R) and np.allclose(a.t, b.t) and np.allclose(a.C, b.C)
        assert a.k == b.k and a.p == b.p and a.distortion_model == "h36m"
    m = d.read_manifest(out)
    assert m["rows"]["poses3d"] == 7 + 8 + 9 and m["rows"]["poses2d"]["detected"] == 24
    assert m["subjects"] == ["S1", "S9"] and m["joints"]["parents"][0] == -1
    assert d.subjects_in(out) == ["S1", "S9"]


def test_pandas_and_duckdb_read_every_table(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    out = tmp_path / "ds"
    truth, _ = _write(out, np.random.default_rng(1))
    df = pd.read_parquet(out / "poses3d")
    assert set(df["subject"].astype(str)) == {"S1", "S9"} and len(df) == 24
    cams = pd.read_parquet(out / "cameras.parquet")
    assert len(cams) == 8 and len(cams["R"].iloc[0]) == 9
    n, first = duckdb.sql(
        f"select count(*), min(joints2d[1]) from read_parquet('{out}/poses2d/**/*.parquet', hive_partitioning=true) "
        "where subject = 'S9'"
    ).fetchall()[0]
    assert n == 9 and np.isclose(first, truth[("S9", "Walking")][1][:, 0, 0].min())


def test_failed_write_leaves_previous_dataset_intact(tmp_path):
    out = tmp_path / "ds"
    _write(out, np.random.default_rng(2))
    before = (out / "manifest.json").read_text()
    with pytest.raises(RuntimeError):
        _write(out, np.random.default_rng(3), fail_after=2)
    assert (out / "manifest.json").read_text() == before
    assert d.read_poses3d(out).num_rows == 24
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary directory left behind


def test_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        _write(tmp_path / "ds", np.random.default_rng(4), fail_after=1)
    assert list(tmp_path.iterdir()) == []


def test_schema_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match=r"\(3, 17, 3\)"):
        d.poses3d_table("A", 1, "A", np.arange(3), np.zeros((3, 16, 3)))
    with pytest.raises(ValueError, match="source"):
        d.poses2d_table("A", 1, "A", np.arange(2), "c", np.zeros((2, 17, 2)), None, "bogus")
    with pytest.raises(d.DatasetError, match="manifest.json"):
        d.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(d.DatasetError, match="format_version"):
        d.read_manifest(tmp_path)


def test_extra_columns_are_kept(tmp_path):
    t = d.poses3d_table("A", 1, "A", np.arange(3), np.zeros((3, 17, 3)))
    t = t.append_column("valid", pa.array([True, False, True]))
    with d.DatasetWriter(tmp_path / "ds") as w:
        w.add_poses3d("TS1", t)
        w.set_cameras([])
        w.commit(d.base_manifest("unit", {"train": [], "test": ["TS1"]}, 25.0))
    back = d.read_poses3d(tmp_path / "ds")
    assert back["valid"].to_pylist() == [True, False, True]


def test_replace_cameras_and_poses2d_files(tmp_path):
    out = tmp_path / "ds"
    _, cams = _write(out, np.random.default_rng(5))
    est = [c.with_extrinsics(c.R, c.t + 1.0, source="estimated") for c in cams if c.subject == "S1"]
    d.replace_cameras(out, est, "estimated", ["S1"])
    d.replace_cameras(out, est, "estimated", ["S1"])  # idempotent: replaces, never duplicates
    allc = d.read_cameras(out)
    assert sum(c.source == "estimated" for c in allc) == 4 and sum(c.source == "given" for c in allc) == 8
    tbl = d.poses2d_table("Walking", 1, "Walking 1", np.arange(2), "virtual-00", np.zeros((2, 17, 2)), None, "virtual")
    d.replace_poses2d_files(out, "S1", "virtual", tbl)
    assert d.read_poses2d(out, ["S1"], source="virtual").num_rows == 2
    d.replace_poses2d_files(out, "S1", "virtual", None)
    assert d.read_poses2d(out, ["S1"], source="virtual").num_rows == 0


def test_read_json_names_the_file_and_the_problem(tmp_path):
    p = tmp_path / "x.json"
    with pytest.raises(ValueError, match=r"x\.json: noise parameters not found"):
        read_json(p, "noise parameters")
    p.write_text("{bad")
    with pytest.raises(d.DatasetError, match=r"x\.json: not valid JSON"):
        read_json(p, error=d.DatasetError)
    p.write_text('{"a": [1, 2]}')
    assert read_json(p) == {"a": [1, 2]}
