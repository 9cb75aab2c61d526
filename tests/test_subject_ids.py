"""Subject ids stay strings in every reader of the hive-partitioned tables (pandas, pyarrow, DuckDB, polars)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest
from test_bvh_exporters import export

from mvtools.dataset import (
    DatasetWriter,
    base_manifest,
    poses3d_table,
    read_cameras,
    read_poses3d,
    safe_subject_id,
    subject_id_is_safe,
)
from mvtools.h36m_cameras import h36m_rig
from mvtools.ingest.bvh.ingest import ingest_bvh


def test_safe_subject_ids():
    for s in ("S1", "CMU02", "TS1", "actor_a", "Nan2"):
        assert subject_id_is_safe(s) and safe_subject_id(s) == s
    for s in ("02", "2", "1e3", "2024-01-01", "nan", "True", "_x", ""):
        assert not subject_id_is_safe(s)
    assert safe_subject_id("02") == "S02"


def test_numeric_subject_from_a_map_reads_as_string_everywhere(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MVTOOLS_QUIET", raising=False)
    d = tmp_path / "in"
    d.mkdir()
    (d / "walk.bvh").write_text(export(T=20))
    (d / "run.bvh").write_text(export(T=20))
    out = tmp_path / "ds"
    s = ingest_bvh(d, out, subject_map="walk*=02,run*=03", split="03", detector_noise="none", min_views=1)
    assert s["subjects"] == ["S02", "S03"] and s["splits"]["test"] == ["S03"]
    assert "subject '02' stored as 'S02'" in capsys.readouterr().err
    df = pd.read_parquet(out / "poses3d")
    assert sorted(set(df["subject"].astype(str))) == ["S02", "S03"]
    assert pads.dataset(out / "poses3d", partitioning="hive").schema.field("subject").type == "string"
    cams = pd.read_parquet(out / "cameras.parquet")
    assert len(df.astype({"subject": str}).merge(cams, on="subject")) > 0  # joins to cameras.parquet
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(
        f"select distinct subject, typeof(subject) from read_parquet('{out}/poses3d/*/*.parquet', "
        "hive_partitioning=true) order by 1"
    ).fetchall()
    assert rows == [("S02", "VARCHAR"), ("S03", "VARCHAR")]


def test_polars_reads_strings(tmp_path):
    pl = pytest.importorskip("polars")
    d = tmp_path / "in"
    d.mkdir()
    (d / "walk.bvh").write_text(export(T=20))
    ingest_bvh(d, tmp_path / "ds", subject_map="walk*=02", detector_noise="none", min_views=1)
    df = pl.read_parquet(str(tmp_path / "ds" / "poses3d" / "**" / "*.parquet"), hive_partitioning=True)
    assert df["subject"].dtype == pl.Utf8 and df["subject"].unique().to_list() == ["S02"]


def test_mvtools_reader_keeps_a_numeric_looking_partition_a_string(tmp_path):
    """mvtools reads with an explicit string partition schema, so even an old dataset with subject=02 keeps '02'."""
    with DatasetWriter(tmp_path / "ds") as w:
        w.add_poses3d("02", poses3d_table("Walk", 1, "Walk", np.arange(3), np.zeros((3, 17, 3), np.float32)))
        w.set_cameras([c for c in h36m_rig("S1").values()])
        w.commit(base_manifest("test", {"train": ["02"], "test": []}, 50.0))
    t = read_poses3d(tmp_path / "ds")
    assert t.schema.field("subject").type == "string" and set(t["subject"].to_pylist()) == {"02"}
    assert read_cameras(tmp_path / "ds")
