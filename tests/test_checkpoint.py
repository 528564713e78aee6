"""Resolving what the user names into a checkpoint, and validating sharded indexes."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from safetensors.numpy import save_file

from helpers import cli
from paramtool import errors
from paramtool.sources.local import open_local


def write(path, tensors, metadata=None):
    save_file(
        {k: np.zeros(s, dtype=np.float32) for k, s in tensors.items()}, path, metadata=metadata
    )
    return path


def sharded(folder, shards, index_extra=None, weight_map=None, total_size=None):
    """Write shards {file: {name: shape}} and an index that names them."""
    folder.mkdir(parents=True, exist_ok=True)
    wm = {}
    size = 0
    for fname, tensors in shards.items():
        write(folder / fname, tensors)
        for name, shape in tensors.items():
            wm[name] = fname
            size += int(np.prod(shape)) * 4
    index = {
        "metadata": {"total_size": size if total_size is None else total_size},
        "weight_map": weight_map if weight_map is not None else wm,
    }
    index.update(index_extra or {})
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def test_single_file(tmp_path):
    p = write(tmp_path / "a.safetensors", {"w": (2, 3)})
    ck = open_local([str(p)])
    assert ck.total_parameters == 6 and len(ck.files) == 1 and ck.index_path is None


def test_folder_with_model_safetensors_and_config(tmp_path):
    write(tmp_path / "model.safetensors", {"w": (4,)})
    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 2}))
    ck = open_local([str(tmp_path)])
    assert ck.total_parameters == 4 and ck.config == {"num_hidden_layers": 2}


def test_adapter_folder(tmp_path):
    write(tmp_path / "adapter_model.safetensors", {"base_model.model.x.lora_A.weight": (2, 8)})
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 2, "peft_type": "LORA"}))
    ck = open_local([str(tmp_path)])
    assert ck.total_parameters == 16 and ck.adapter_config["r"] == 2


def test_several_files_at_once(tmp_path):
    a = write(tmp_path / "a.safetensors", {"x": (2,)})
    b = write(tmp_path / "b.safetensors", {"y": (3,)})
    ck = open_local([str(a), str(b)])
    assert ck.total_parameters == 5 and len(ck.files) == 2


def test_sharded_folder(tmp_path):
    folder = sharded(
        tmp_path / "m",
        {
            "model-00001-of-00002.safetensors": {"a": (2, 2)},
            "model-00002-of-00002.safetensors": {"b": (3,), "c": (1,)},
        },
    )
    ck = open_local([str(folder)])
    assert ck.total_parameters == 8 and len(ck.files) == 2 and ck.warnings == ()
    # The index file itself is an accepted path too.
    assert open_local([str(folder / "model.safetensors.index.json")]).total_parameters == 8


def test_total_size_mismatch_is_a_warning(tmp_path):
    folder = sharded(tmp_path / "m", {"s1.safetensors": {"a": (2,)}}, total_size=999)
    ck = open_local([str(folder)])
    assert ck.total_parameters == 2
    assert any("total_size" in w for w in ck.warnings)


@pytest.mark.parametrize(
    "bad", ["../evil.safetensors", "/etc/passwd", "sub/../../x.safetensors", "C:\\x"]
)
def test_index_shard_paths_stay_inside(tmp_path, bad):
    folder = sharded(tmp_path / "m", {"s1.safetensors": {"a": (2,)}}, weight_map={"a": bad})
    with pytest.raises(errors.ShardIndexError, match="outside|absolute"):
        open_local([str(folder)])


def test_symlinked_shard_escaping_the_folder(tmp_path):
    outside = write(tmp_path / "outside.safetensors", {"a": (2,)})
    folder = tmp_path / "m"
    folder.mkdir()
    os.symlink(outside, folder / "s1.safetensors")
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": {"a": "s1.safetensors"}})
    )
    with pytest.raises(errors.ShardIndexError, match="symlink"):
        open_local([str(folder)])


def test_indexed_tensor_missing_from_shard(tmp_path):
    folder = sharded(
        tmp_path / "m",
        {"s1.safetensors": {"a": (2,)}},
        weight_map={"a": "s1.safetensors", "ghost": "s1.safetensors"},
    )
    with pytest.raises(errors.ShardIndexError, match="ghost"):
        open_local([str(folder)])


def test_shard_tensor_not_in_index(tmp_path):
    folder = sharded(
        tmp_path / "m",
        {"s1.safetensors": {"a": (2,), "stowaway": (2,)}},
        weight_map={"a": "s1.safetensors"},
    )
    with pytest.raises(errors.ShardIndexError, match="stowaway"):
        open_local([str(folder)])


def test_missing_shard(tmp_path):
    folder = sharded(
        tmp_path / "m",
        {"s1.safetensors": {"a": (2,)}},
        weight_map={"a": "s1.safetensors", "b": "s2.safetensors"},
    )
    with pytest.raises(errors.ShardIndexError, match="missing"):
        open_local([str(folder)])


@pytest.mark.parametrize("name", ["s2.safetensors", "pytorch_model-00002.bin", "s2.pt"])
def test_missing_shard_is_named_whatever_its_format(tmp_path, name):
    # A shard is stat'ed only once reading it failed: a missing .bin (read as a pickle by its
    # name) is still "missing", with the index's shard name, not the pickle reader's error.
    folder = sharded(
        tmp_path / "m",
        {"s1.safetensors": {"a": (2,)}},
        weight_map={"a": "s1.safetensors", "b": name},
    )
    with pytest.raises(errors.ShardIndexError, match=rf"shard '{re.escape(name)}' is missing"):
        open_local([str(folder)])


def test_bad_index_json(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(errors.ShardIndexError, match="JSON"):
        open_local([str(folder)])


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "model.pth", "last.ckpt"])
def test_pickle_names_are_read_as_pickles_and_garbage_is_one_error(tmp_path, name):
    # Pickles are read symbolically now (tests/test_pickle_inspect.py); bytes that are no
    # torch checkpoint are a header error naming the file, from a file or its folder.
    p = tmp_path / name
    p.write_bytes(b"this would be a pickle")
    try:
        with pytest.raises(errors.HeaderError, match=name):
            open_local([str(p)])
        with pytest.raises(errors.HeaderError, match=name):
            open_local([str(tmp_path)])
    finally:
        os.chmod(p, 0o644)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(errors.SourceNotFound, match="no such file"):
        open_local([str(tmp_path / "nope")])
    with pytest.raises(errors.SourceNotFound, match="no safetensors"):
        open_local([str(tmp_path)])


def test_malformed_config_is_a_warning(tmp_path):
    write(tmp_path / "model.safetensors", {"w": (4,)})
    (tmp_path / "config.json").write_text("{broken")
    ck = open_local([str(tmp_path)])
    assert ck.config is None and any("config.json" in w for w in ck.warnings)


def test_huggingface_cache_snapshot_symlinks_are_inside(tmp_path):
    # The huggingface_hub cache keeps files in blobs/ and symlinks them from snapshots/<sha>/.
    repo = tmp_path / "models--org--name"
    (repo / "blobs").mkdir(parents=True)
    snap = repo / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    write(repo / "blobs" / "b1", {"a": (2,)})
    os.symlink("../../blobs/b1", snap / "s1.safetensors")
    (snap / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": {"a": "s1.safetensors"}})
    )
    assert open_local([str(snap)]).total_parameters == 2
    # ...but not a symlink out of the repo's cache folder.
    outside = write(tmp_path / "elsewhere.safetensors", {"a": (2,)})
    (snap / "s1.safetensors").unlink()
    os.symlink(outside, snap / "s1.safetensors")
    with pytest.raises(errors.ShardIndexError, match="symlink"):
        open_local([str(snap)])


def test_duplicate_tensors_across_files_are_one_summary_line(tmp_path):
    # Two copies of one checkpoint read together (staged together for the pre-commit hook).
    names = {f"model.layers.{i}.weight": (2,) for i in range(200)}
    a = write(tmp_path / "a.safetensors", names)
    b = write(tmp_path / "b.safetensors", names)
    ck = open_local([a, b])
    assert ck.warnings == (
        f"200 tensor names appear in more than one file (the first, 'model.layers.0.weight', "
        f"in both {a} and {b}); several checkpoints read as one?",
    )
    one = write(tmp_path / "c.safetensors", {"model.layers.0.weight": (2,), "x": (2,)})
    assert open_local([a, one]).warnings == (
        f"tensor 'model.layers.0.weight' appears in both {a} and {one}",
    )


def test_duplicate_tensors_warn_once_on_stderr(tmp_path):
    names = {f"w{i}": (2,) for i in range(50)}
    a = write(tmp_path / "a.safetensors", names)
    b = write(tmp_path / "b.safetensors", names)
    for args in (("inspect", str(a), str(b)), ("check", str(a), str(b), "--max-size", "1GB")):
        r = cli(*args)
        assert r.exit_code == 0, r.stderr
        lines = [x for x in r.stderr.splitlines() if "more than one file" in x]
        assert len(lines) == 1 and lines[0].startswith("paramtool: warning: 50 tensor names"), (
            r.stderr
        )


def test_index_naming_a_shard_with_a_lone_surrogate_is_one_error(tmp_path):
    # "\ud800" in JSON is a str no file name can hold: refused, not an internal error.
    write(tmp_path / "model-00001-of-00001.safetensors", {"a": (2,)})
    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": {"a": "\\ud800.st"}}')
    with pytest.raises(errors.ShardIndexError, match=r"shard name '\\ud800.st' is not valid"):
        open_local([tmp_path])
