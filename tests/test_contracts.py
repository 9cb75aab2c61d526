"""One owner per contract: the pair-shard format is defined in mvtools.augment.pairs and the trainer reads
exactly that; the CLI takes its option defaults and choice lists from the library functions it calls."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from mvtools.augment import pairs
from mvtools.dataset import DatasetError


def test_trainer_fields_are_shard_columns():
    from mvtools.train import data

    schema = pairs.PAIRS_SCHEMA
    for name, shape in data.FIELDS.items():
        typ = schema.field(name).type
        assert pa.types.is_fixed_size_list(typ) and typ.value_type == pa.float32(), name
        assert typ.list_size == int(np.prod(shape)), name
    for name in data.META:  # ids: strings, and the integer sub-action number
        typ = schema.field(name).type
        assert typ == pa.string() or pa.types.is_integer(typ), name


def test_trainer_checks_the_owners_version(tmp_path):
    from mvtools.train.data import read_pairs_manifest

    m = {"format_version": pairs.PAIRS_FORMAT_VERSION, "extrinsics": "given", "shards": []}
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    assert read_pairs_manifest(tmp_path)["format_version"] == pairs.PAIRS_FORMAT_VERSION
    (tmp_path / "manifest.json").write_text(json.dumps({**m, "format_version": pairs.PAIRS_FORMAT_VERSION + 1}))
    with pytest.raises(DatasetError, match=r"manifest.json: format_version 2, this mvtools reads 1"):
        read_pairs_manifest(tmp_path)


# ----------------------------------------------------------------------------- CLI defaults and choices
def _commands():
    from mvtools.augment.pipeline import augment
    from mvtools.calibration.pipeline import calibrate_from_joints, import_toml
    from mvtools.calibration.triangulate import triangulate_dataset
    from mvtools.demo import run_demo
    from mvtools.evaluate.evaluation import evaluate_run, write_evaluation
    from mvtools.evaluate.predict import predict
    from mvtools.ingest.bvh.ingest import ingest_bvh
    from mvtools.ingest.h36m.reader import ingest_h36m
    from mvtools.ingest.keypoints.ingest import ingest_keypoints
    from mvtools.ingest.mpi3dhp import ingest_3dhp
    from mvtools.synth.dataset import synth_dataset
    from mvtools.synth.h36m import synth_h36m

    # command -> (library functions, {cli parameter: library parameter} where the names differ, CLI-only options)
    return {
        "augment": ([augment], {}, set()),
        "calibrate": (
            [calibrate_from_joints, import_toml],
            {"toml_units": "units"},
            {"from_joints", "import_toml", "subject", "as_given"},
        ),
        "demo": ([run_demo], {}, {"out", "epochs", "channels"}),
        "evaluate": ([evaluate_run, write_evaluation], {"views": "cameras"}, {"json_out"}),
        "predict": ([predict], {"calibration": "cameras"}, {"out"}),
        "ingest h36m": ([ingest_h36m], {"d2_tolerance": "d2_tolerance_px"}, {"out"}),
        "ingest bvh": ([ingest_bvh], {}, {"out"}),
        "ingest 3dhp": ([ingest_3dhp], {}, {"out"}),
        "synth h36m": ([synth_h36m], {}, {"out", "float32"}),
        "synth dataset": ([synth_dataset], {"sequences": "sequences_per_subject"}, {"out"}),
        "ingest keypoints": ([ingest_keypoints], {}, {"out", "intrinsics"}),
        "triangulate": ([triangulate_dataset], {}, set()),
    }


def _choices():
    from mvtools.augment.pipeline import EXTRINSICS
    from mvtools.augment.virtual import LAYOUTS
    from mvtools.calibration.pipeline import SCALES
    from mvtools.calibration.toml_io import UNITS_MM
    from mvtools.calibration.triangulate import EXTRINSICS as TRI_EXTRINSICS
    from mvtools.calibration.triangulate import SOURCES2D
    from mvtools.calibration.twoview import METHODS
    from mvtools.dataset import INPUT_SOURCES, VIEWS
    from mvtools.devices import DEVICES
    from mvtools.ingest.bvh.ingest import FLOOR_MODES
    from mvtools.ingest.bvh.kinematics import POSITION_MODES, RESAMPLE_METHODS
    from mvtools.ingest.bvh.reader import UNITS, UP_AXES
    from mvtools.ingest.keypoints.formats import FORMATS
    from mvtools.ingest.keypoints.layouts import LAYOUTS as KP_LAYOUTS
    from mvtools.ingest.mpi3dhp import SPLITS, TEST_INTRINSICS

    return {
        ("augment", "layout"): LAYOUTS,
        ("augment", "extrinsics"): EXTRINSICS,
        ("augment", "views"): VIEWS,
        ("augment", "source"): INPUT_SOURCES,
        ("calibrate", "source"): INPUT_SOURCES,
        ("calibrate", "scale"): SCALES,
        ("calibrate", "method"): sorted(METHODS),
        ("calibrate", "toml_units"): list(UNITS_MM),
        ("evaluate", "source"): INPUT_SOURCES,
        ("evaluate", "views"): VIEWS,
        ("evaluate", "device"): DEVICES,
        ("predict", "device"): DEVICES,
        ("predict", "fmt"): ("auto", *FORMATS),
        ("predict", "layout"): ("auto", *KP_LAYOUTS),
        ("ingest keypoints", "fmt"): ("auto", *FORMATS),
        ("ingest keypoints", "layout"): ("auto", *KP_LAYOUTS),
        ("triangulate", "extrinsics"): TRI_EXTRINSICS,
        ("triangulate", "source"): SOURCES2D,
        ("ingest 3dhp", "split"): SPLITS,
        ("ingest 3dhp", "test_intrinsics"): TEST_INTRINSICS,
        ("ingest bvh", "units"): ("auto", *UNITS),
        ("ingest bvh", "floor"): FLOOR_MODES,
        ("ingest bvh", "resample"): RESAMPLE_METHODS,
        ("ingest bvh", "position_channels"): POSITION_MODES,
        ("ingest bvh", "up_axis"): ("auto", *UP_AXES),
        ("ingest bvh", "drop_tpose"): ("auto", "yes", "no"),  # CLI words for the library's "auto" / True / False
    }


def _cli_commands():
    import click

    from mvtools.cli.main import COMMANDS, cli

    ctx = click.Context(cli)
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(click.Context(cmd, parent=ctx)):
                yield f"{name} {sub}", cmd.get_command(click.Context(cmd, parent=ctx), sub)
        else:
            yield name, cmd


def test_cli_defaults_are_the_librarys():
    import click

    from mvtools.cli.common import defaults_of

    table = _commands()
    seen = set()
    for name, cmd in _cli_commands():
        if name == "train":
            continue  # the trainer has its own config object
        fns, rename, cli_only = table[name]
        lib = {}
        for fn in reversed(fns):
            lib.update(defaults_of(fn))
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.hidden or p.name in cli_only:
                continue
            key = rename.get(p.name, p.name)
            assert key in lib, f"{name} --{p.name}: no library default to take"
            want = lib[key]
            if (name, p.name) == ("ingest 3dhp", "cameras"):  # the CLI names the library's camera set
                from mvtools.ingest.mpi3dhp import CAMERA_SETS

                want = next(k for k, v in CAMERA_SETS.items() if tuple(v) == tuple(want))
            assert p.default == want, f"{name} --{p.name}: CLI default {p.default!r}, library {want!r}"
            seen.add(name)
    assert seen == set(table)


def test_cli_choices_are_the_librarys():
    import click

    table = _choices()
    found = set()
    for name, cmd in _cli_commands():
        if name == "train":
            continue
        for p in cmd.params:
            if isinstance(p, click.Option) and isinstance(p.type, click.Choice) and not p.hidden:
                assert (name, p.name) in table, f"{name} --{p.name}: choice list without a library owner"
                assert tuple(p.type.choices) == tuple(table[name, p.name]), f"{name} --{p.name}"
                found.add((name, p.name))
    assert found == set(table)
