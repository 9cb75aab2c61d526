"""End-to-end training runs on tiny shards: CLI, run directory, resume bit-for-bit, option errors."""

import json

import pytest
import torch
from click.testing import CliRunner
from helpers import make_dataset, make_shards

from mvtools.cli.main import cli
from mvtools.train.inference import load_lifter
from mvtools.train.loop import train

torch.set_num_threads(1)
SMALL = dict(channels=32, blocks=1, batch_size=64, dropout=0.1, warmup_steps=3, plots=False, threads=1)


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    d = make_dataset(tmp_path_factory.mktemp("train") / "ds", frames=20)
    make_shards(d, pairs_per_frame=6)
    return d


def _records(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_cli_train_writes_run_directory(ds, tmp_path):
    run = tmp_path / "run"
    res = CliRunner().invoke(
        cli,
        [
            "train",
            str(ds),
            "--out",
            str(run),
            "--epochs",
            "3",
            "--pretrain-epochs",
            "2",
            "--channels",
            "32",
            "--blocks",
            "1",
            "--batch-size",
            "64",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    for f in ("config.json", "last.pt", "best.pt", "metrics.jsonl", "loss.png", "mpjpe.png", "skeletons.png"):
        assert (run / f).exists(), f
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["channels"] == 32 and cfg["loss"] == "trans-reproj" and cfg["derived"]["extrinsics"] == "given"
    recs = _records(run)
    assert [r["phase"] for r in recs] == ["pretrain"] * 2 + ["main"] * 3
    for r in recs:
        assert r["pairs_per_s"] > 0 and r["test_mpjpe"] > 0 and r["test_p_mpjpe"] <= r["test_mpjpe"] + 1e-6
        assert r["heldout_loss"] > 0 and r["heldout_consistency_mm"] >= 0
    assert "loss_reproj" in recs[-1] and "loss_t_reproj" in recs[-1]
    assert recs[-1]["loss"] == pytest.approx(recs[-1]["loss_reproj"] + recs[-1]["loss_t_reproj"])
    main = [r for r in recs if r["phase"] == "main"]
    best = min(main, key=lambda r: r["heldout_consistency_rel"])
    assert summary["best_heldout_score"] == pytest.approx(best["heldout_consistency_rel"])
    assert summary["best_epoch"] == best["epoch"]
    assert len(cfg["derived"]["heldout_sequences"]) == 1  # 10 % of 4 training sequences, at least one
    lift, cfg2 = load_lifter(run)
    assert cfg2["blocks"] == 1 and not lift.training


def test_schedule_lr_decay_per_third_of_the_steps(ds, tmp_path):
    train(ds, tmp_path / "r", epochs=6, pretrain_epochs=1, lr=1e-3, **SMALL)
    lrs = [r["lr"] for r in _records(tmp_path / "r")]  # the rate of each epoch's last step
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])


def test_resume_is_bit_for_bit(ds, tmp_path):
    opts = dict(epochs=3, pretrain_epochs=2, seed=3, **SMALL)
    train(ds, tmp_path / "full", **opts)
    train(ds, tmp_path / "part", stop_after=3, **opts)  # stops right after the first main epoch
    assert len(_records(tmp_path / "part")) == 3
    train(ds, tmp_path / "part", resume=True, **opts)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    ra, rb = _records(tmp_path / "full"), _records(tmp_path / "part")
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]
    assert [r["heldout_loss"] for r in ra] == [r["heldout_loss"] for r in rb]


def test_supervised_learns(ds, tmp_path):
    train(
        ds,
        tmp_path / "sup",
        loss="supervised",
        epochs=8,
        pretrain_epochs=5,
        lr=3e-3,
        **{**SMALL, "dropout": 0.0, "channels": 64},
    )
    recs = _records(tmp_path / "sup")
    assert all(r["phase"] == "main" for r in recs) and len(recs) == 8  # no pre-training for supervised
    assert recs[-1]["test_mpjpe"] < 0.6 * recs[0]["test_mpjpe"]
    assert recs[-1]["heldout_loss"] < 0.6 * recs[0]["heldout_loss"]  # supervised: held-out MPJPE, mm


def test_option_errors(ds, tmp_path):
    with pytest.raises(ValueError, match="built with 'given' extrinsics"):
        train(ds, tmp_path / "e", extrinsics="estimated", epochs=1, **SMALL)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        train(ds, tmp_path / "e", amp="bf16", device="cpu", epochs=1, **SMALL)
    train(ds, tmp_path / "r", epochs=1, pretrain_epochs=0, **SMALL)
    with pytest.raises(ValueError, match="not empty"):
        train(ds, tmp_path / "r", epochs=1, pretrain_epochs=0, **SMALL)
    with pytest.raises(ValueError, match="same options.*epochs"):
        train(ds, tmp_path / "r", epochs=2, pretrain_epochs=0, resume=True, **SMALL)
    (tmp_path / "nodata").mkdir()  # a directory without pair shards
    res = CliRunner().invoke(cli, ["train", str(tmp_path / "nodata"), "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "pairs" in res.output and "Error" in res.output


def test_pipeline_synth_augment_train_evaluate(tmp_path):
    """The real producers of the shards (mvtools.synth, mvtools.augment) feed train and evaluate."""
    from mvtools.augment import augment
    from mvtools.evaluate.evaluation import evaluate_run
    from mvtools.synth.dataset import synth_dataset

    ds = synth_dataset(tmp_path / "ds", subjects=["S1", "S9"], sequences_per_subject=1, frames=30)
    augment(ds, virtual_views=2, pairs_per_frame=2)
    run = tmp_path / "run"
    summary = train(ds, run, epochs=1, pretrain_epochs=1, **SMALL)
    # one sequence per training subject: nothing can be held out (best.pt is the last epoch)
    assert summary["train_pairs"] == 60 and summary["heldout_pairs"] == 0 and summary["test_pairs"] == 60
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["derived"]["virtual_views"] == 2 and cfg["derived"]["source2d"] == "detected"
    res = evaluate_run(run, ds, cameras="all")
    assert res["subjects"] == ["S9"] and res["source"] == "detected"
    cams = set(res["per_camera"])
    assert len(cams) == 6 and sum(c.startswith("virtual") for c in cams) == 2
    assert res["n_poses"] == sum(d["n"] for d in res["per_camera"].values())


def test_warmup_ramps_the_learning_rate_linearly_each_phase(ds, tmp_path, monkeypatch):
    """Per optimiser step the rate is lr * k / warmup for k = 1..warmup, then lr, restarting in each phase
    (warm-up at most a tenth of the phase: 4 steps of a 40-step phase)."""
    seen = []
    real_step = torch.optim.Adam.step

    def spy(self, *a, **kw):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    train(
        ds,
        tmp_path / "w",
        epochs=8,
        pretrain_epochs=8,
        lr=1e-3,
        **{**SMALL, "warmup_steps": 4, "batch_size": 72, "lr_step": 100},
    )
    n = len(seen) // 2  # eight pre-training epochs, eight main epochs, same number of steps
    assert len(seen) == 2 * n and n >= 40
    for phase in (seen[:n], seen[n:]):
        assert phase[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
        assert phase[4:] == pytest.approx([1e-3] * (n - 4))
