"""Losses (eq. 1-7), model shapes and the pair loader against hand-computed and OpenCV references."""

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import REST, make_dataset, make_poses, make_shards

from mvtools.camera import look_at, relative_transform, tvec_from_center, world_to_camera
from mvtools.dataset import DatasetError
from mvtools.skeleton import H36M17_FLIP
from mvtools.train import losses
from mvtools.train.data import epoch_batches, load_pairs
from mvtools.train.model import (
    DEPTH0_MM,
    Dropout,
    GlobalBatchNorm1d,
    LiftingNet,
    ResLinear,
    RootNet,
    TwoBranch,
    normalise_2d,
)

torch.set_num_threads(1)


def _two_views(n=6, seed=0):
    rng = np.random.default_rng(seed)
    P = make_poses(n, rng)
    C1, C2 = np.array([4000.0, -1000, 1500]), np.array([-2500.0, 3500, 1700])
    R1, R2 = look_at(C1, np.array([0, 0, 900.0])), look_at(C2, np.array([0, 0, 900.0]))
    t1, t2 = tvec_from_center(R1, C1), tvec_from_center(R2, C2)
    Y1, Y2 = world_to_camera(P, R1, t1), world_to_camera(P, R2, t2)
    R12, t12 = relative_transform(R1, t1, R2, t2)
    R21, t21 = relative_transform(R2, t2, R1, t1)
    K1, K2 = np.array([1100.0, 1090, 500, 510]), np.array([900.0, 905, 640, 360])
    T = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    rep = lambda a: T(np.broadcast_to(a, (n,) + np.shape(a)).copy())  # noqa: E731
    return dict(
        Y1=T(Y1),
        Y2=T(Y2),
        K1=rep(K1),
        K2=rep(K2),
        R12=rep(R12),
        t12=rep(t12),
        R21=rep(R21),
        t21=rep(t21),
        R1=R1,
        t1=t1,
        n=n,
    )


def test_project_matches_opencv():
    v = _two_views()
    Y = v["Y1"].numpy()[0]
    fx, fy, cx, cy = v["K1"][0].tolist()
    ref, _ = cv2.projectPoints(Y, np.zeros(3), np.zeros(3), np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]]), None)
    ours = losses.project(v["Y1"], v["K1"])[0].numpy()
    np.testing.assert_allclose(ours, ref[:, 0], atol=1e-3)


def test_tau_maps_view1_onto_view2_and_gt_losses_are_zero():
    v = _two_views()
    np.testing.assert_allclose(losses.transform(v["Y1"], v["R12"], v["t12"]).numpy(), v["Y2"].numpy(), atol=1e-3)
    np.testing.assert_allclose(losses.transform(v["Y2"], v["R21"], v["t21"]).numpy(), v["Y1"].numpy(), atol=1e-3)
    X1, X2 = losses.project(v["Y1"], v["K1"]), losses.project(v["Y2"], v["K2"])
    w = torch.rand(v["n"], 17)
    args = (v["Y1"], v["Y2"], X1, X2, w, w, v["K1"], v["K2"])
    assert losses.reproj_loss(*args).abs().max() < 1e-6
    assert losses.t_reproj_loss(*args, v["R12"], v["t12"], v["R21"], v["t21"]).abs().max() < 1e-4
    assert losses.pretrain_loss(v["Y1"], v["Y2"], v["R12"], v["t12"], v["R21"], v["t21"]).abs().max() < 1e-3


def test_reproj_hand_case():
    # one joint at (300, 400, 2000) mm, f = 1000, c = (500, 500): projects to (650, 700) px
    Y = torch.tensor([[[300.0, 400.0, 2000.0]]])
    K = torch.tensor([[1000.0, 1000.0, 500.0, 500.0]])
    X = torch.tensor([[[653.0, 704.0]]])  # off by (3, 4): squared error 25 px^2
    w1, w2 = torch.tensor([[0.5]]), torch.tensor([[2.0]])
    val = losses.reproj_loss(Y, Y, X, X, w1, w2, K, K)
    assert val.item() == pytest.approx(0.5 * 25 + 2.0 * 25)


def test_t_reproj_weights_as_printed():
    # eq. 5: the view-1 prediction moved into view 2 is weighted by w^{v1}
    v = _two_views(n=1)
    X1, X2 = losses.project(v["Y1"], v["K1"]), losses.project(v["Y2"], v["K2"])
    X2_off = X2 + torch.tensor([3.0, 4.0])  # every joint 25 px^2 off in view 2
    w1, w0 = torch.full((1, 17), 0.25, dtype=torch.float64), torch.zeros(1, 17, dtype=torch.float64)
    tr = (v["R12"], v["t12"], v["R21"], v["t21"])
    a = losses.t_reproj_loss(v["Y1"], v["Y2"], X1, X2_off, w1, w0, v["K1"], v["K2"], *tr)
    assert a.item() == pytest.approx(0.25 * 25 * 17, rel=1e-4)
    b = losses.t_reproj_loss(v["Y1"], v["Y2"], X1, X2_off, w0, w1, v["K1"], v["K2"], *tr)
    assert b.item() == pytest.approx(0.0, abs=1e-4)
    tot, lr_, lt = losses.trans_reproj_loss(v["Y1"], v["Y2"], X1, X2_off, w1, w1, v["K1"], v["K2"], *tr, lam=2.0)
    assert tot.item() == pytest.approx(lr_.item() + 2.0 * lt.item())
    assert lr_.item() == pytest.approx(0.25 * 25 * 17, rel=1e-4)  # only view 2's own reprojection is off


def test_pretrain_hand_case():
    # identity transform, view-2 prediction offset by 10 mm on every joint: 2 * 17 * 100 mm^2
    Y1 = torch.zeros(1, 17, 3)
    Y2 = Y1 + torch.tensor([0.0, 0.0, 10.0])
    eye, zero = torch.eye(3)[None], torch.zeros(1, 3)
    assert losses.pretrain_loss(Y1, Y2, eye, zero, eye, zero).item() == pytest.approx(2 * 17 * 100)


def test_supervised_is_root_relative_mpjpe():
    y3d = torch.tensor(make_poses(3, np.random.default_rng(1)) + [0, 0, 4000.0], dtype=torch.float32)
    rel = y3d - y3d[:, :1]
    off = rel + torch.tensor([6.0, 8.0, 0.0])
    off[:, 0] = 0  # the root stays fixed: 16 of 17 joints off by 10 mm
    np.testing.assert_allclose(losses.supervised_loss(off, y3d).numpy(), 10.0 * 16 / 17, rtol=1e-5)


def test_model_shapes_and_parametrisation():
    torch.manual_seed(0)
    x = torch.randn(8, 17, 2) * 0.1
    lift = LiftingNet(ResLinear(34, 51, channels=64, blocks=2))
    y = lift(x)
    assert y.shape == (8, 17, 3)
    assert torch.all(y[:, 0] == 0)
    root = RootNet(ResLinear(34, 3, channels=64, blocks=2)).eval()
    r = root(x)
    assert r.shape == (8, 3) and torch.all(r[:, 2] > 0)
    # fresh output layer: depth near 5 m and the root on the ray of its 2D position
    np.testing.assert_allclose(r[:, 2].detach().numpy(), DEPTH0_MM, rtol=0.05)
    np.testing.assert_allclose((r[:, :2] / r[:, 2:]).detach().numpy(), x[:, 0].numpy(), atol=0.02)
    rel, rt = TwoBranch(64, 1, 0.1)(x)
    assert rel.shape == (8, 17, 3) and rt.shape == (8, 3)


def test_normalise_2d_inverts_intrinsics():
    K = torch.tensor([[1000.0, 900.0, 500.0, 400.0]])
    xn = torch.tensor([[[0.1, -0.2]]])
    px = xn * K[:, None, :2] + K[:, None, 2:]
    torch.testing.assert_close(normalise_2d(px, K), xn)


def test_global_batchnorm_is_batchnorm_without_ddp():
    torch.manual_seed(0)
    a, b = GlobalBatchNorm1d(5), torch.nn.BatchNorm1d(5)
    x = torch.randn(16, 5) * 3 + 1
    torch.testing.assert_close(a(x), b(x))
    torch.testing.assert_close(a.running_var, b.running_var)


def test_epoch_batches_rank_slices_partition_the_global_batch():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    single = epoch_batches(103, 20, g1)
    ranks = [epoch_batches(103, 20, torch.Generator().manual_seed(3), r, 3) for r in range(3)]
    assert len(single) == 5 and all(n == 20 for _, n in single)  # incomplete last batch dropped
    for i, (idx, _) in enumerate(single):
        joined = torch.cat([ranks[r][i][0] for r in range(3)])
        assert torch.equal(joined, idx)
    assert len(epoch_batches(7, 20, g2)) == 1 and epoch_batches(7, 20, g2)[0][1] == 7


def test_load_pairs_fields_and_subset(tmp_path):
    ds = make_dataset(tmp_path / "ds", frames=10)
    pdir = make_shards(ds)
    t = pq.read_table(pdir / "train/part-00000.parquet")
    p = load_pairs(pdir, "train")
    assert len(p) == t.num_rows
    np.testing.assert_array_equal(
        p.field("y3d_b").numpy().reshape(len(p), -1), np.stack(t.column("y3d_b").to_numpy(zero_copy_only=False))
    )
    b = p.batch(torch.tensor([5, 2]))
    np.testing.assert_array_equal(b["R_ab"].numpy(), p.field("R_ab")[[5, 2]].numpy())
    sub = load_pairs(pdir, "train", max_pairs=17, seed=1)
    assert len(sub) == 17
    rows = {tuple(r) for r in p.packed.numpy()}
    assert all(tuple(r) in rows for r in sub.packed.numpy())


def test_load_pairs_errors(tmp_path):
    ds = make_dataset(tmp_path / "ds", frames=5)
    pdir = make_shards(ds)
    shard = pdir / "train/part-00000.parquet"
    pq.write_table(pq.read_table(shard).drop_columns(["conf_a"]), shard)
    with pytest.raises(DatasetError, match=r"part-00000.parquet.*conf_a"):
        load_pairs(pdir, "train")
    shard.unlink()
    with pytest.raises(DatasetError, match="part-00000.parquet.*missing"):
        load_pairs(pdir, "train")


def test_fast_dropout_statistics():
    torch.manual_seed(0)
    d = Dropout(0.3)
    x = torch.ones(400, 1000)
    y = d(x)
    p = d.threshold / 256  # 0.3 rounded to a multiple of 1/256
    assert abs(p - 0.3) <= 1 / 512
    assert float((y == 0).float().mean()) == pytest.approx(p, abs=0.005)
    assert float(y.mean()) == pytest.approx(1.0, abs=0.01)  # inverted dropout keeps the expectation
    vals = torch.unique(y).tolist()
    assert len(vals) == 2 and vals[0] == 0.0 and vals[1] == pytest.approx(1 / (1 - p))
    d.eval()
    assert torch.equal(d(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    g = torch.ones(10, 10, requires_grad=True)
    out = Dropout(0.5)(g)
    out.sum().backward()
    torch.testing.assert_close(g.grad, (out > 0).float() * 2.0)


def test_root_depth_soft_bound_keeps_a_gradient():
    # a hard clamp of o_z to +-5 (the earlier parametrisation) gives zero gradient once the output leaves the
    # range, so a root pushed far away (e.g. early in the main phase) could never come back
    torch.manual_seed(0)
    root = RootNet(ResLinear(34, 3, channels=16, blocks=1, dropout=0.0)).eval()
    x = torch.randn(4, 17, 2) * 0.1
    for oz in (-12.0, 0.0, 3.0, 12.0):
        with torch.no_grad():
            root.net.out.weight.zero_()
            root.net.out.bias.copy_(torch.tensor([0.0, 0.0, oz]))
        root.zero_grad()
        z = root(x)[:, 2]
        z.sum().backward()
        t = np.tanh(oz / 5.0)
        z_ref = DEPTH0_MM * np.exp(5.0 * t)  # hand-computed depth and d z / d o_z = z (1 - tanh^2)
        np.testing.assert_allclose(z.detach().numpy(), z_ref, rtol=1e-5)
        assert DEPTH0_MM * np.exp(-5) < z_ref < DEPTH0_MM * np.exp(5)
        g = root.net.out.bias.grad[2].item()
        np.testing.assert_allclose(g, 4 * z_ref * (1 - t * t), rtol=1e-4)
        assert g > 0


def test_flipped_pair_stays_consistent_and_penalties():
    """A mirrored pair (both views, conjugated transform) of exact data still has zero (t-)reprojection error;
    robust penalties equal r^2 for small residuals and grow slower beyond their scale."""
    from mvtools.train.data import flip_pairs
    from mvtools.train.inference import flip_2d, flip_3d

    v = _two_views()
    B = v["Y1"].shape[0]
    b = {
        "x2d_a": losses.project(v["Y1"], v["K1"]),
        "x2d_b": losses.project(v["Y2"], v["K2"]),
        "conf_a": torch.ones(B, 17),
        "conf_b": torch.rand(B, 17),
        "K_a": v["K1"],
        "K_b": v["K2"],
        "R_ab": v["R12"],
        "t_ab": v["t12"],
        "R_ba": v["R21"],
        "t_ba": v["t21"],
        "y3d_a": v["Y1"],
        "y3d_b": v["Y2"],
    }
    b = {k: t.float() for k, t in b.items()}
    mask = torch.arange(B) % 2 == 0
    f = flip_pairs(b, mask)
    args = (f["y3d_a"], f["y3d_b"], f["x2d_a"], f["x2d_b"], f["conf_a"], f["conf_b"], f["K_a"], f["K_b"])
    assert losses.reproj_loss(*args).abs().max() < 1e-4
    assert losses.t_reproj_loss(*args, f["R_ab"], f["t_ab"], f["R_ba"], f["t_ba"]).abs().max() < 1e-2
    assert torch.equal(f["x2d_a"][1], b["x2d_a"][1]) and not torch.allclose(f["x2d_a"][0], b["x2d_a"][0])
    assert torch.allclose(f["conf_b"][0], b["conf_b"][0][torch.as_tensor(H36M17_FLIP)])
    # mirroring twice is the identity; 3D mirror of the lifting matches the 2D mirror of the projection
    xn = normalise_2d(b["x2d_a"], b["K_a"])
    assert torch.allclose(flip_2d(flip_2d(xn)), xn)
    Yf = flip_3d(b["y3d_a"])
    assert torch.allclose(normalise_2d(losses.project(Yf, b["K_a"]), b["K_a"]), flip_2d(xn), atol=1e-5)
    r2 = torch.tensor([1.0, 100.0, 10000.0])
    for kind in ("huber", "geman-mcclure"):
        p = losses.penalty(r2, kind, 15.0)
        assert p[0] == pytest.approx(1.0, rel=0.01) and p[2] < 0.5 * r2[2]
    assert losses.penalty(r2, "huber", 15.0)[2] == pytest.approx(2 * 15 * 100 - 225)
    # bone symmetry: zero for the symmetric rest pose, positive when one shin is longer
    rel = torch.tensor(REST - REST[0], dtype=torch.float32)[None]
    assert losses.bone_symmetry(rel).item() == pytest.approx(0.0, abs=1e-6)
    long = rel.clone()
    long[0, 3, 2] -= 50.0  # right ankle 50 mm lower: right shin 50 mm longer
    assert losses.bone_symmetry(long).item() == pytest.approx(2500.0, rel=1e-4)


def test_root_weight_scales_only_the_pelvis_terms():
    from mvtools.train.config import TrainConfig

    v = _two_views()
    B = v["n"]
    X1 = losses.project(v["Y1"], v["K1"]) + 3.0  # every joint 3 px off in x and y
    X2 = losses.project(v["Y2"], v["K2"]) - 2.0
    b = {
        "x2d_a": X1,
        "x2d_b": X2,
        "conf_a": torch.ones(B, 17),
        "conf_b": torch.ones(B, 17),
        "K_a": v["K1"],
        "K_b": v["K2"],
        "R_ab": v["R12"],
        "t_ab": v["t12"],
        "R_ba": v["R21"],
        "t_ba": v["t21"],
    }
    pred = losses.Prediction(v["Y1"] * 0, v["Y2"] * 0, v["Y1"], v["Y2"])
    fn = losses.get_loss("reproj").fn
    base = fn(pred, b, TrainConfig(root_weight=1.0))["reproj"]
    heavy = fn(pred, b, TrainConfig(root_weight=16.0))["reproj"]
    per_joint = base / 17  # all joints have the same residual: (3^2 + 3^2) + (2^2 + 2^2) px^2
    assert torch.allclose(per_joint, torch.full((B,), 26.0, dtype=per_joint.dtype), rtol=1e-4)
    assert torch.allclose(heavy, base + 15 * per_joint, rtol=1e-5)
