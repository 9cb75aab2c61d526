"""Checkpoints hold tensors and plain values only: a planted pickle payload never runs; kills at any point of an
epoch's save leave a run that --resume finishes bit-identically; best.pt and the metrics line precede last.pt."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import make_dataset, make_shards

from mvtools.cli.main import cli
from mvtools.train.checkpoint import load_checkpoint, upgrade
from mvtools.train.loop import train

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
OPTS = [
    "--epochs",
    "3",
    "--pretrain-epochs",
    "1",
    "--channels",
    "16",
    "--blocks",
    "1",
    "--batch-size",
    "32",
    "--dropout",
    "0.1",
    "--warmup-steps",
    "2",
    "--seed",
    "4",
    "--device",
    "cpu",
    "--no-plots",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    d = make_dataset(tmp_path_factory.mktemp("ck") / "ds", frames=10)
    make_shards(d, pairs_per_frame=4)
    return d


class Payload:
    """Unpickling this object calls open(marker, 'w'): a file appears if a loader ever runs pickled code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path, real: dict | None = None) -> None:
    obj = dict(real or {"model": {}, "config": {}})
    obj["payload"] = Payload(marker)
    torch.save(obj, path)


def test_planted_payload_never_runs(ds, tmp_path):
    run = tmp_path / "run"
    train(ds, run, epochs=1, pretrain_epochs=1, channels=16, blocks=1, batch_size=32, plots=False)
    marker = tmp_path / "PWNED"
    real = torch.load(run / "last.pt", weights_only=True)
    for name in ("best.pt", "last.pt"):
        _plant(run / name, marker, real)
    planted = tmp_path / "elsewhere.pt"
    _plant(planted, marker, real)
    inp = tmp_path / "in.csv"
    inp.write_text(
        ",".join([f"{c}{j}" for j in range(17) for c in "xy"] + ["fx", "fy", "cx", "cy"])
        + "\n"
        + ",".join(["500"] * 34 + ["1000", "1000", "500", "500"])
        + "\n"
    )
    calls = [
        ["predict", str(run), str(inp), "--out", str(tmp_path / "o.csv")],
        ["predict", str(run), str(inp), "--out", str(tmp_path / "o.csv"), "--checkpoint", str(planted)],
        ["evaluate", str(run), str(ds)],
        [
            "train",
            str(ds),
            "--out",
            str(run),
            "--resume",
            "--epochs",
            "1",
            "--pretrain-epochs",
            "1",
            "--channels",
            "16",
            "--blocks",
            "1",
            "--batch-size",
            "32",
            "--no-plots",
        ],
    ]
    for args in calls:
        res = CliRunner().invoke(cli, args)
        assert res.exit_code != 0, args
        assert "refused" in res.output and "Traceback" not in res.output, res.output
        assert not marker.exists(), f"payload ran in {args[0]}"
    # the protection is what stops it: the unsafe loader does run the payload
    torch.load(planted, weights_only=False)
    assert marker.exists()


def test_old_format_checkpoints_load_or_say_how_to_convert(ds, tmp_path):
    import numpy as np

    run = tmp_path / "run"
    train(ds, run, epochs=1, pretrain_epochs=0, channels=16, blocks=1, batch_size=32, plots=False)
    new = torch.load(run / "last.pt", weights_only=True)
    # format 1 (mvtools 0.1): numpy RNG state in last.pt, flat config with data facts, no format keys
    old = {
        "model": new["model"],
        "config": {**new["config"], "source2d": "gt"},
        "epoch": 1,
        "phase": "main",
        "optimizer": new["optimizer"],
        "scheduler": None,
        "scaler": None,
        "perm_generator": new["perm_generator"],
        "rng": [{"torch": torch.get_rng_state(), "numpy": np.random.get_state()}],
        "best": 1.0,
        "best_epoch": 1,
        "world_size": 1,
    }
    torch.save(old, tmp_path / "old_last.pt")
    with pytest.raises(ValueError, match="python -m mvtools.train.checkpoint upgrade"):
        load_checkpoint(tmp_path / "old_last.pt")
    upgrade(tmp_path / "old_last.pt", tmp_path / "converted.pt")
    conv = load_checkpoint(tmp_path / "converted.pt")
    assert conv["format_version"] == 2 and "numpy" not in conv["rng"][0]
    # an old best.pt (model + flat config + epoch + phase) holds only plain values and loads as it is
    torch.save({k: old[k] for k in ("model", "config", "epoch", "phase")}, run / "best.pt")
    from mvtools.train.inference import load_run

    r = load_run(run)
    assert (
        r.data["source2d"] == "gt"
        and r.config.channels == 16
        and "older mvtools" in r.checkpoint["selection"]["metric"]
    )


def _cmd(ds, out, *extra):
    return [sys.executable, "-m", "mvtools", "train", str(ds), "--out", str(out), *OPTS, *extra]


def _env(**kw):
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MVTOOLS_QUIET": "1", **kw}


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigkill_then_resume_is_bit_identical(ds, tmp_path):
    ref = tmp_path / "ref"
    subprocess.run(_cmd(ds, ref), env=_env(), check=True, capture_output=True, timeout=300)
    ref_lines = (ref / "metrics.jsonl").read_text().splitlines()
    # kill points: inside the save sequence of epochs 1..3 (SIGKILL from the process itself, deterministic) and
    # by time from outside
    points = [("after-best", 1), ("after-metrics", 2), ("after-last", 1), ("after-best", 2)]
    for i, (point, n) in enumerate(points):
        run = tmp_path / f"k{i}"
        p = subprocess.run(
            _cmd(ds, run), env=_env(MVTOOLS_TRAIN_FAULT=f"{point}:{n}"), capture_output=True, timeout=300
        )
        assert p.returncode == -signal.SIGKILL, (point, p.stderr[-2000:])
        # invariant after the kill: last.pt is never newer than best.pt or the metrics lines
        if (run / "last.pt").exists():
            done = torch.load(run / "last.pt", weights_only=True)
            lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
            assert lines[-1]["epoch"] >= done["epoch"]
            if done["best_epoch"] is not None:
                assert torch.load(run / "best.pt", weights_only=True)["epoch"] >= done["best_epoch"]
        subprocess.run(_cmd(ds, run, "--resume"), env=_env(), check=True, capture_output=True, timeout=300)
        for name in ("last.pt", "best.pt"):
            assert _same(_weights(ref / name), _weights(run / name)), (point, n, name)
        got = (run / "metrics.jsonl").read_text().splitlines()
        strip = [{k: v for k, v in json.loads(ln).items() if k not in ("pairs_per_s", "train_s")} for ln in got]
        want = [{k: v for k, v in json.loads(ln).items() if k not in ("pairs_per_s", "train_s")} for ln in ref_lines]
        assert strip == want, point
    # by time: kill the process while it runs (before its first checkpoint, or in the middle), then resume
    run = tmp_path / "timed"
    p = subprocess.Popen(_cmd(ds, run), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (run / "config.json").exists() and p.poll() is None:
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    subprocess.run(_cmd(ds, run, "--resume"), env=_env(), check=True, capture_output=True, timeout=300)
    assert _same(_weights(ref / "last.pt"), _weights(run / "last.pt"))
    assert _same(_weights(ref / "best.pt"), _weights(run / "best.pt"))


def test_train_output_guard_inside_dataset_and_second_writer(ds, tmp_path):
    """train takes the one output guard: a run directory inside the dataset is refused, and while another process
    holds the run's lock (a second `mvtools train --out RUN`) the run fails at once, writing nothing."""
    from mvtools.io import OutputError, lock_output

    inside = ds / "runs" / "r1"
    res = CliRunner().invoke(cli, ["train", str(ds), "--out", str(inside), *OPTS])
    assert res.exit_code != 0 and "inside" in res.output.lower() and not inside.exists()
    out = tmp_path / "run"
    held = lock_output(out)
    try:
        with pytest.raises(OutputError, match="lock|another"):
            train(ds, out, epochs=1, pretrain_epochs=1, channels=16, blocks=1, batch_size=32, plots=False, threads=1)
        assert not out.exists()
    finally:
        held.release()
