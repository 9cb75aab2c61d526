"""CDF pose files: round trip in the raw layout and clear errors for damaged files."""

import numpy as np
import pytest

cdflib = pytest.importorskip("cdflib")
from cdflib.cdfwrite import CDF  # noqa: E402

from mvtools.dataset import DatasetError  # noqa: E402
from mvtools.ingest.h36m.cdf import read_pose_cdf, write_pose_cdf  # noqa: E402


def test_round_trip_known_values(tmp_path):
    a = np.arange(5 * 96, dtype=np.float64).reshape(5, 96) * 0.5 - 17.25  # exact in binary
    p = write_pose_cdf(tmp_path / "Directions 1.cdf", a)
    # the raw layout, as the real files: cdflib gives one record (1, T, D) under 'Pose'
    raw = cdflib.CDF(str(p))
    assert raw.cdf_info().zVariables + raw.cdf_info().rVariables == ["Pose"]
    assert raw["Pose"].shape == (1, 5, 96)
    assert raw.varinq("Pose").Data_Type_Description == "CDF_DOUBLE"
    back = read_pose_cdf(p)
    assert back.shape == (5, 96) and back.dtype == np.float64
    np.testing.assert_array_equal(back, a)
    assert back[2, 3] == (2 * 96 + 3) * 0.5 - 17.25


def test_round_trip_float32_d2(tmp_path):
    a = (np.random.default_rng(0).random((7, 64)) * 1000).astype(np.float32)
    p = write_pose_cdf(tmp_path / "Walking.54138969.cdf", a, dtype=np.float32)
    assert cdflib.CDF(str(p)).varinq("Pose").Data_Type_Description == "CDF_FLOAT"
    np.testing.assert_array_equal(read_pose_cdf(p, 64), a)


def test_no_stray_files(tmp_path):
    write_pose_cdf(tmp_path / "a.cdf", np.zeros((2, 96)))
    assert [f.name for f in tmp_path.iterdir()] == ["a.cdf"]


def _write_var(path, name, data):
    w = CDF(str(path))
    w.write_var(
        {
            "Variable": name,
            "Data_Type": CDF.CDF_DOUBLE,
            "Num_Elements": 1,
            "Rec_Vary": True,
            "Dim_Sizes": list(data.shape[1:]),
            "Compress": 0,
        },
        var_data=data,
    )
    w.close()


def test_missing_variable(tmp_path):
    p = tmp_path / "x.cdf"
    _write_var(p, "Positions", np.zeros((1, 3, 96)))
    with pytest.raises(DatasetError, match=r"x\.cdf: no variable 'Pose' \(found: Positions\)"):
        read_pose_cdf(p)


def test_wrong_width(tmp_path):
    p = write_pose_cdf(tmp_path / "w.cdf", np.zeros((4, 90)))
    with pytest.raises(DatasetError, match=r"w\.cdf: 'Pose' has 90 values per frame"):
        read_pose_cdf(p)
    q = write_pose_cdf(tmp_path / "d2.cdf", np.zeros((4, 64)))
    with pytest.raises(DatasetError, match=r"d2\.cdf: 'Pose' has 64 values per frame, expected 96"):
        read_pose_cdf(q, 96)


@pytest.mark.parametrize("keep", [0, 10, 300, 0.5, -100])
def test_truncated(tmp_path, keep):
    p = write_pose_cdf(tmp_path / "t.cdf", np.ones((200, 96)))
    raw = p.read_bytes()
    n = int(len(raw) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(raw) + keep)
    p.write_bytes(raw[:n])
    with pytest.raises(DatasetError, match=r"t\.cdf: .*(truncated or corrupt|not a readable)"):
        read_pose_cdf(p)


def test_garbage_and_missing(tmp_path):
    p = tmp_path / "g.cdf"
    p.write_bytes(b"not a cdf" * 50)
    with pytest.raises(DatasetError, match=r"g\.cdf: not a readable CDF file"):
        read_pose_cdf(p)
    with pytest.raises(DatasetError, match=r"nope\.cdf: no such CDF file"):
        read_pose_cdf(tmp_path / "nope.cdf")


def test_nan(tmp_path):
    a = np.zeros((6, 96))
    a[4, 7] = np.nan
    p = write_pose_cdf(tmp_path / "n.cdf", a)
    with pytest.raises(
        DatasetError, match=r"n\.cdf: 'Pose' holds NaN/inf values in 1 of 6 frames \(first at frame 4\)"
    ):
        read_pose_cdf(p)


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="must be"):
        write_pose_cdf(tmp_path / "a.cdf", np.zeros((3, 32, 3)))
    with pytest.raises(ValueError, match="end in .cdf"):
        write_pose_cdf(tmp_path / "a.txt", np.zeros((3, 96)))
