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
    for name in data.META:
        assert schema.field(name).type == pa.string(), name


def test_trainer_checks_the_owners_version(tmp_path):
    from mvtools.train.data import read_pairs_manifest

    m = {"format_version": pairs.PAIRS_FORMAT_VERSION, "extrinsics": "given", "shards": []}
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    assert read_pairs_manifest(tmp_path)["format_version"] == pairs.PAIRS_FORMAT_VERSION
    (tmp_path / "manifest.json").write_text(json.dumps({**m, "format_version": pairs.PAIRS_FORMAT_VERSION + 1}))
    with pytest.raises(DatasetError, match=r"manifest.json: format_version 2, this mvtools reads 1"):
        read_pairs_manifest(tmp_path)
