"""Training never lets the test split decide anything: replacing the test pairs' 2D and 3D by noise changes no
weight of best.pt or last.pt; best.pt is chosen on held-out TRAINING sequences and says so."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import torch
from helpers import make_dataset, make_shards

from mvtools.dataset import fsl
from mvtools.evaluate.evaluation import evaluate_run, format_table
from mvtools.train.loop import train

torch.set_num_threads(1)
OPTS = dict(
    epochs=4,
    pretrain_epochs=1,
    channels=16,
    blocks=1,
    batch_size=32,
    dropout=0.1,
    warmup_steps=2,
    seed=7,
    plots=False,
    threads=1,
)


def _noise_test_split(ds, seed=0):
    """Overwrite x2d_a/b and y3d_a/b of every test shard with random values (finite, same shapes)."""
    rng = np.random.default_rng(seed)
    m = json.loads((ds / "pairs" / "manifest.json").read_text())
    for s in m["shards"]:
        if s["split"] != "test":
            continue
        path = ds / "pairs" / s["path"]
        t = pq.read_table(path)
        n = t.num_rows
        for name, width in (("x2d_a", 34), ("x2d_b", 34), ("y3d_a", 51), ("y3d_b", 51)):
            t = t.set_column(t.column_names.index(name), name, fsl(rng.normal(0, 1e4, (n, width))))
        pq.write_table(t, path)


def test_test_split_noise_changes_no_weight(tmp_path):
    clean = make_dataset(tmp_path / "clean", frames=12)
    make_shards(clean, pairs_per_frame=4)
    noisy = tmp_path / "noisy"
    shutil.copytree(clean, noisy)
    _noise_test_split(noisy)
    a = train(clean, tmp_path / "a", **OPTS)
    b = train(noisy, tmp_path / "b", **OPTS)
    assert a["best_epoch"] == b["best_epoch"] and a["test_pairs"] == b["test_pairs"] > 0
    for name in ("best.pt", "last.pt"):
        wa = torch.load(tmp_path / "a" / name, weights_only=True)["model"]
        wb = torch.load(tmp_path / "b" / name, weights_only=True)["model"]
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    ra = [json.loads(ln) for ln in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(ln) for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["heldout_loss"] for r in ra] == [r["heldout_loss"] for r in rb]
    assert [r["test_mpjpe"] for r in ra] != [r["test_mpjpe"] for r in rb]  # the test split was read, for logs only
    # evaluate says which checkpoint it used and how it was chosen
    res = evaluate_run(tmp_path / "a", clean)
    ck = res["checkpoint"]
    assert ck["which"] == "best" and ck["epoch"] == a["best_epoch"]
    assert ck["selection"]["metric"] == "heldout_consistency_rel"
    assert "no 3D labels" in ck["selection"]["computed_on"]
    assert "chosen by: heldout_consistency_rel" in format_table(res)
    held = json.loads((tmp_path / "a" / "config.json").read_text())["derived"]["heldout_sequences"]
    assert held and all(h.split("/")[0] in ("S1", "S2") for h in held)  # training subjects only
