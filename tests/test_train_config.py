"""TrainConfig is the one home of the training options: the CLI is generated from it, config.json round-trips,
registries feed the choices, and nothing outside the loop imports the loop."""

import json
import subprocess
import sys

import pytest
import torch
from helpers import make_dataset, make_shards

from mvtools.cli.train import option_name
from mvtools.cli.train import train as train_cmd
from mvtools.train.config import TrainConfig, choices, option_fields, run_keys
from mvtools.train.losses import LOSSES, main_losses, register_loss
from mvtools.train.model import BACKBONES, Backbone, build_model

torch.set_num_threads(1)


def test_cli_options_agree_with_train_config():
    params = {p.name: p for p in train_cmd.params}
    for f in option_fields():
        p = params.pop(f.name)
        assert option_name(f) in p.opts, f.name
        assert p.default == f.default, f.name
        assert f.metadata["help"] in p.help, f.name
        if f.metadata["unit"]:
            assert f.metadata["unit"] in p.help, f.name
        allowed = choices(f)
        if allowed is not None:
            assert tuple(p.type.choices) == tuple(allowed), f.name
    assert set(params) == {"ds", "out"}  # nothing else is defined by hand


def test_config_round_trip_and_validation():
    c = TrainConfig(channels=64, loss="reproj", lam=2.0, max_pairs=100)
    d = json.loads(json.dumps(c.to_dict()))
    assert TrainConfig.from_dict({**d, "derived": {"x": 1}}) == c.replace(resume=False)
    assert "resume" not in d and "threads" in d and "loss" in run_keys() and "threads" not in run_keys()
    with pytest.raises(ValueError, match="--channels must be >= 1"):
        TrainConfig(channels=0).validate()
    with pytest.raises(ValueError, match="--loss must be one of"):
        TrainConfig(loss="nope").validate()
    with pytest.raises(ValueError, match="--dropout must be < 1"):
        TrainConfig(dropout=1.0).validate()
    with pytest.raises(ValueError, match="--lambda must be a float"):
        TrainConfig(lam="x").validate()
    with pytest.raises(TypeError, match="unknown training option"):
        TrainConfig().replace(chanels=3)


def test_registries_extend_training(tmp_path):
    """A new backbone and a new loss are one class / one function each; the loop sums the loss's parts."""
    ds = make_dataset(tmp_path / "ds", frames=8)
    make_shards(ds, pairs_per_frame=2)

    class Tiny(Backbone):
        def __init__(self, i, o):
            super().__init__()
            self.lin = torch.nn.Linear(i, o)

        @classmethod
        def from_config(cls, i, o, config):
            return cls(i, o)

        def forward(self, x):
            return self.lin(x.flatten(1))

    @register_loss("test-two-parts", uses_root=False, pretrain=False, unit="mm")
    def two_parts(pred, b, config):
        return {"a": pred.rel_a.abs().mean((1, 2)), "b": 2 * pred.rel_b.abs().mean((1, 2))}

    BACKBONES["test-tiny"] = Tiny
    try:
        from mvtools.train.loop import train

        assert "test-two-parts" in main_losses()
        m = build_model(TrainConfig(backbone="test-tiny"))
        assert isinstance(m.lift.net, Tiny) and m.receptive_field() == 1
        train(
            ds,
            tmp_path / "run",
            backbone="test-tiny",
            loss="test-two-parts",
            epochs=1,
            batch_size=16,
            plots=False,
            test_max_pairs=0,
        )
        rec = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
        assert rec["loss"] == pytest.approx(rec["loss_a"] + rec["loss_b"])
    finally:
        BACKBONES.pop("test-tiny")
        LOSSES.pop("test-two-parts")


def test_inference_users_do_not_import_the_training_loop():
    code = (
        "import sys, mvtools.evaluate.evaluation, mvtools.evaluate.predict, mvtools.train.plots, "
        "mvtools.train.inference; print('mvtools.train.loop' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_thread_count_is_chosen_and_recorded(tmp_path, monkeypatch):
    """--threads 0 measures 1 vs all cores and records the choice; --resume keeps the recorded count."""
    import mvtools.train.threads as th
    from mvtools.train.loop import train

    ds = make_dataset(tmp_path / "ds", frames=6)
    make_shards(ds, pairs_per_frame=2)
    calls = []
    monkeypatch.setattr(th, "available_cores", lambda: 2)
    real = th._gemm_per_s
    monkeypatch.setattr(th, "_gemm_per_s", lambda n, r, c: calls.append(n) or (5.0 if n == 1 else 1.0))
    opts = dict(epochs=2, pretrain_epochs=0, channels=8, blocks=0, batch_size=16, plots=False, test_max_pairs=0)
    try:
        train(ds, tmp_path / "r", stop_after=1, **opts)
        assert calls == [1, 2] and torch.get_num_threads() == 1
        cfg = json.loads((tmp_path / "r" / "config.json").read_text())
        assert cfg["threads"] == 0 and cfg["derived"]["threads"] == 1
        torch.set_num_threads(2)
        train(ds, tmp_path / "r", resume=True, **opts)  # reuses the recorded 1, measures nothing
        assert calls == [1, 2] and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)
    assert real(1, 8, 8) > 0


def test_docs_option_table_is_generated_from_train_config():
    from pathlib import Path

    from mvtools.train.config import options_markdown

    doc = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    block = doc.split("<!-- options:begin -->\n")[1].split("\n<!-- options:end -->")[0]
    assert block == options_markdown(), "regenerate with: python -m mvtools.train.config"
