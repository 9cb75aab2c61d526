"""The temporal backbone (VideoPose3D dilated convolutions) and its windows: receptive-field arithmetic, edge
padding, the strided training form against the dilated per-window form, sequence inference against per-frame
windows."""

import numpy as np
import pandas as pd
import pytest
import torch

from mvtools.train.config import TrainConfig
from mvtools.train.model import BACKBONES, LiftingNet, build_model
from mvtools.train.temporal import TemporalConvNet, conv_flops_per_window, filter_widths_for, target_offset
from mvtools.train.windows import gather_windows, pad_edges, sequences_from_arrays, window_index

torch.set_num_threads(1)


def _net(rf, causal=False, channels=16, seed=0):
    torch.manual_seed(seed)
    net = TemporalConvNet(6, 5, rf, channels, dropout=0.0, causal=causal)
    for m in net.modules():  # non-trivial BatchNorm running statistics and a visible output layer
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    torch.nn.init.normal_(net.shrink.weight, std=0.3)
    return net.eval()


@pytest.mark.parametrize("rf,widths", [(27, [3, 3, 3]), (81, [3, 3, 3, 3]), (243, [3, 3, 3, 3, 3])])
def test_receptive_field_arithmetic(rf, widths):
    assert filter_widths_for(rf) == widths
    net = TemporalConvNet(34, 51, rf, channels=8)
    assert net.receptive_field() == rf and BACKBONES["temporal"] is TemporalConvNet
    # VideoPose3D: receptive field = 1 + 2 * sum of the per-layer paddings, pad_i = (w_i - 1) * dilation_i / 2
    pads, dil = [widths[0] // 2], widths[0]
    for w in widths[1:]:
        pads.append((w - 1) * dil // 2)
        dil *= w
    assert 1 + 2 * sum(pads) == rf
    # the dilated form turns T + rf - 1 frames into T outputs
    assert net.eval().forward_sequence(torch.zeros(2, rf + 9, 34)).shape == (2, 10, 51)
    assert target_offset(rf, False) == rf // 2 and target_offset(rf, True) == rf - 1


def test_receptive_field_errors():
    for bad in (1, 3, 10, 100, 0):
        with pytest.raises(ValueError, match="power of 3"):
            filter_widths_for(bad)
    with pytest.raises(ValueError, match="27 frames"):
        TemporalConvNet(6, 5, 27, 8)(torch.zeros(1, 26, 6))


def test_flops_count_hand_computed():
    # rf 27, C 4: input layer 6*4*3 MAC at 9 positions, blocks at 3 then 1 positions: 4*4*(3+1) each, output 4*5
    assert conv_flops_per_window(27, 4, 5, in_features=6) == 2 * (6 * 4 * 3 * 9 + 16 * 4 * 3 + 16 * 4 * 1 + 20)


@pytest.mark.parametrize("causal", [False, True])
def test_strided_training_form_equals_dilated_per_window(causal):
    net = _net(27, causal)
    x = torch.randn(5, 27, 6, requires_grad=True)
    strided = net(x)
    dilated = net.forward_sequence(x)
    assert dilated.shape == (5, 1, 5)
    torch.testing.assert_close(strided, dilated[:, 0], rtol=1e-5, atol=1e-5)
    # same gradients on the same weights
    g1 = torch.autograd.grad(strided.square().sum(), [x, net.expand.weight, net.convs[0].weight])
    g2 = torch.autograd.grad(net.forward_sequence(x).square().sum(), [x, net.expand.weight, net.convs[0].weight])
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_causal_output_ignores_future_frames():
    net = _net(27, causal=True)
    x = torch.randn(1, 40, 6)
    y = net.forward_sequence(x)
    x2 = x.clone()
    x2[:, 30:] += 5.0  # changes inputs from frame 30 on: outputs of windows ending before 30 stay
    y2 = net.forward_sequence(x2)
    torch.testing.assert_close(y[:, : 30 - 26], y2[:, : 30 - 26])
    assert not torch.allclose(y[:, 30 - 26], y2[:, 30 - 26])


def _seqs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate(lengths):
        rows.append(
            pd.DataFrame(
                {"subject": "S1", "action": f"a{i}", "subaction": 1, "camera": "c0", "frame": np.arange(n) * 2 + 10}
            )
        )
    meta = pd.concat(rows, ignore_index=True)
    m = len(meta)
    x2d = rng.uniform(0, 1000, (m, 17, 2)).astype(np.float32)
    K = np.tile(np.array([1000.0, 1100.0, 500.0, 480.0], np.float32), (m, 1))
    return sequences_from_arrays(meta, meta["frame"].to_numpy(), x2d, K), x2d, K, meta


@pytest.mark.parametrize("causal", [False, True])
def test_windows_pad_edges_by_replication_like_np_pad(causal):
    seqs, x2d, K, meta = _seqs([5, 30])
    rf = 9
    xn = (x2d - K[:, None, 2:]) / K[:, None, :2]
    rows = torch.arange(len(meta))
    w = gather_windows(seqs, rows, rf, causal).numpy()
    before, after = (rf - 1, 0) if causal else (rf // 2, rf // 2)
    for s, e in ((0, 5), (5, 35)):  # VideoPose3D: np.pad(seq, ..., 'edge') then a window per frame
        padded = np.pad(xn[s:e], ((before, after), (0, 0), (0, 0)), "edge")
        ref = np.stack([padded[t : t + rf] for t in range(e - s)])
        np.testing.assert_array_equal(w[s:e], ref)
        np.testing.assert_array_equal(pad_edges(torch.from_numpy(xn[s:e]), rf, causal).numpy(), padded)
    # the target frame of every window is the row itself
    np.testing.assert_array_equal(w[:, target_offset(rf, causal)], xn)
    # windows never cross into the neighbouring sequence
    idx = window_index(rows, seqs.first, seqs.last, rf, causal)
    assert idx[:5].max() == 4 and idx[5:].min() == 5


def test_rows_lookup_and_errors():
    seqs, _, _, meta = _seqs([5, 30])
    r = seqs.rows(["S1", "S1"], ["a1", "a0"], [1, 1], ["c0", "c0"], [10 + 2 * 7, 10 + 2 * 4])
    np.testing.assert_array_equal(r, [5 + 7, 4])
    from mvtools.dataset import DatasetError

    with pytest.raises(DatasetError, match="no 2D sequence"):
        seqs.rows(["S1"], ["zz"], [1], ["c0"], [10])
    with pytest.raises(DatasetError, match="frame 11"):
        seqs.rows(["S1"], ["a0"], [1], ["c0"], [11])
    bad = meta.iloc[[0, 1, 5, 2]].reset_index(drop=True)
    with pytest.raises(DatasetError, match="not contiguous"):
        sequences_from_arrays(bad, np.array([10, 12, 10, 14]), np.zeros((4, 17, 2)), np.ones((4, 4)))
    with pytest.raises(DatasetError, match="not increasing"):
        sequences_from_arrays(meta.iloc[:3], np.array([10, 14, 12]), np.zeros((3, 17, 2)), np.ones((3, 4)))


@pytest.mark.parametrize("causal", [False, True])
def test_sequence_inference_equals_per_frame_windows(causal):
    torch.manual_seed(1)
    lift = LiftingNet(TemporalConvNet(34, 51, 27, channels=16, dropout=0.0, causal=causal)).eval()
    torch.nn.init.normal_(lift.net.shrink.weight, std=0.1)
    seqs, _, _, _ = _seqs([12, 40])
    rows = torch.arange(len(seqs))
    per_frame = lift(gather_windows(seqs, rows, 27, causal))  # training form, one window per frame
    for s, e in ((0, 12), (12, 52)):
        full = lift.forward_sequence(pad_edges(seqs.xn[s:e], 27, causal)[None])[0]  # one pass per sequence
        torch.testing.assert_close(full, per_frame[s:e], rtol=1e-4, atol=1e-3)
    assert per_frame[:, 0].abs().max() == 0  # root joint exactly 0


def test_two_branch_root_on_target_ray():
    torch.manual_seed(0)
    for causal in (False, True):
        m = build_model(
            TrainConfig(backbone="temporal", receptive_field=27, channels=8, dropout=0.0, causal=causal)
        ).eval()
        assert m.receptive_field() == 27
        xw = torch.randn(3, 27, 17, 2) * 0.1
        rel, root = m(xw)
        assert rel.shape == (3, 17, 3) and root.shape == (3, 3)
        t = target_offset(27, causal)
        # output layer starts near 0: the root lies (almost) on the target frame's 2D root ray at ~5 m
        torch.testing.assert_close(root[:, :2] / root[:, 2:], xw[:, t, 0], atol=1e-2, rtol=0)
        assert ((root[:, 2] > 4000) & (root[:, 2] < 6000)).all()


@pytest.fixture(scope="module")
def augmented(synth_ds, tmp_path_factory):
    import shutil

    from mvtools.augment import augment

    ds = tmp_path_factory.mktemp("temporal") / "ds"
    shutil.copytree(synth_ds, ds)  # the session fixture is shared: work on a copy
    augment(ds, virtual_views=4, pairs_per_frame=3)
    return ds


def test_augment_writes_sequences_matching_the_pairs(augmented):
    import pyarrow.parquet as pq

    from mvtools.dataset import read_poses3d
    from mvtools.train.data import load_pairs, read_pairs_manifest
    from mvtools.train.model import normalise_2d
    from mvtools.train.windows import load_sequences

    pdir = augmented / "pairs"
    man = read_pairs_manifest(pdir)
    assert {s["split"] for s in man["sequences"]} == {"train", "test"}
    t = pq.read_table(pdir / "sequences" / "train.parquet").to_pandas()
    n3d = read_poses3d(augmented, ["S1", "S5"], columns=["frame"]).num_rows
    assert len(t) == n3d * 8  # 4 real + 4 virtual views, every frame of every sequence
    assert set(t.kind) == {"real", "virtual"} and t.valid.mean() > 0.9
    for split in ("train", "test"):
        seqs = load_sequences(pdir, split, man)
        pairs = load_pairs(pdir, split, manifest=man)
        m = pairs.meta
        for view in ("a", "b"):
            rows = seqs.rows(m["subject"], m["action"], m["subaction"], m[f"cam_{view}"], m["frame"])
            centre = gather_windows(seqs, torch.from_numpy(rows), 27, False)[:, 13]
            ref = normalise_2d(pairs.field(f"x2d_{view}"), pairs.field(f"K_{view}"))
            torch.testing.assert_close(centre, ref, rtol=0, atol=1e-6)


def test_fill_invalid_rows_hand_computed():
    """A missing keypoint's frame takes the nearest earlier complete frame of its own sequence (the first complete
    one for a leading gap), never a frame of another sequence; a sequence without a complete frame becomes 0."""
    from mvtools.augment.sequences import fill_from_valid, fill_invalid_rows

    x = np.arange(9, dtype=float)[:, None, None] * np.ones((1, 2, 2))
    x[[0, 3, 5, 7, 8]] = np.nan
    x[4, 1, 0] = np.nan  # one coordinate of one joint is enough to make a frame incomplete
    seq = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    out = fill_invalid_rows(x, seq)
    np.testing.assert_array_equal(out[:, 0, 0], [1, 1, 2, 2, 6, 6, 6, 0, 0])
    assert np.isfinite(out).all() and np.isnan(x[0, 0, 0])  # a copy; the input is untouched
    ok = np.isfinite(x[:4]).all((1, 2))  # one sequence: the same rule as augment's fill_from_valid
    np.testing.assert_array_equal(fill_invalid_rows(x[:4], seq[:4]), x[:4][fill_from_valid(ok)])
    full = np.ones((3, 2, 2))
    np.testing.assert_array_equal(fill_invalid_rows(full, np.zeros(3)), full)


def test_dense_frames_hand_computed():
    """A gap of k steps becomes k - 1 rows copying the frame before it; the step is each sequence's median frame
    difference (every frame, every tenth, millisecond time stamps), and a repeated frame number is the next row."""
    from mvtools.augment.sequences import dense_frames

    frame = np.array([0, 1, 2, 5, 6, 10, 20, 30, 50, 0, 33, 67, 100, 200, 7, 7, 8])
    seq = np.array([0] * 5 + [1] * 4 + [2] * 5 + [3] * 3)
    pos, src, dense = dense_frames(frame, seq)
    np.testing.assert_array_equal(pos, [0, 1, 2, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 18, 19, 20, 21])
    np.testing.assert_array_equal(src, [0, 1, 2, 2, 2, 3, 4, 5, 6, 7, 7, 8, 9, 10, 11, 12, 12, 12, 13, 14, 15, 16])
    np.testing.assert_array_equal(dense[:12], [0, 1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50])
    np.testing.assert_array_equal(dense[12:19], [0, 33, 67, 100, 134, 167, 200])
    np.testing.assert_array_equal(dense[pos], frame)  # present rows keep their frame numbers
    p1, s1, d1 = dense_frames(np.arange(5) * 3)  # no gap: the identity
    np.testing.assert_array_equal(p1, np.arange(5))
    np.testing.assert_array_equal(s1, np.arange(5))
    assert [len(a) for a in dense_frames(np.zeros(0))] == [0, 0, 0]


def test_temporal_lifting_reinserts_missing_frames():
    """With frame numbers, a sequence with missing frames is lifted as the sequence with those frames filled by
    the frame before (the training sequences' rule), so a window spans the frames it spanned in training; rows may
    come in any order."""
    from mvtools.train.inference import lift_2d

    torch.manual_seed(2)
    lift = LiftingNet(TemporalConvNet(34, 51, 9, channels=16, dropout=0.0, causal=False)).eval()
    torch.nn.init.normal_(lift.net.shrink.weight, std=0.1)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(0, 1000, (20, 17, 2)).astype(np.float32))
    K = torch.tensor([[1000.0, 1000.0, 500.0, 500.0]]).repeat(20, 1)
    frame = np.r_[np.arange(8), np.arange(12, 24)]  # frames 8-11 missing
    full_rows = np.r_[np.arange(8), [7, 7, 7, 7], np.arange(8, 20)]
    ref = lift_2d(lift, x[full_rows], K[full_rows], sequence=np.zeros(24))
    want = ref[np.r_[np.arange(8), np.arange(12, 24)]]
    perm = rng.permutation(20)
    got = np.empty_like(want)
    got[perm] = lift_2d(lift, x[perm], K[perm], sequence=np.zeros(20), frame=frame[perm])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
    plain = lift_2d(lift, x, K, sequence=np.zeros(20))  # without frame numbers the rows count as consecutive
    assert np.abs(plain[6:14] - want[6:14]).max() > 1.0


def test_sequence_table_fills_gaps_in_the_3d_frames():
    """Frames missing from a sequence's 3D rows (ingest bvh drops frames the cameras do not see) get rows in the
    training sequences too, as frames without 2D: a window of R rows spans R frames in training as at test time."""
    from mvtools.augment.sequences import sequence_table

    frames = np.array([10, 11, 12, 16, 17])
    x2d = np.arange(5, dtype=np.float64)[:, None, None, None] * np.ones((1, 2, 17, 2))
    seen = np.ones((5, 2), bool)
    seen[1, 1] = False
    K = np.array([[1000.0, 1000.0, 500.0, 500.0]] * 2)
    t = sequence_table("S1", "a", 1, frames, ["v0", "v1"], ["virtual", "virtual"], K, x2d, seen, []).to_pandas()
    v0, v1 = t[t.camera == "v0"], t[t.camera == "v1"]
    np.testing.assert_array_equal(v0.frame, np.arange(10, 18))
    np.testing.assert_array_equal(v0.valid, [1, 1, 1, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal([x[0] for x in v0.x2d], [0, 1, 2, 2, 2, 2, 3, 4])
    np.testing.assert_array_equal([x[0] for x in v1.x2d], [0, 0, 2, 2, 2, 2, 3, 4])
