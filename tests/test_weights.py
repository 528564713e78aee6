"""One weight-picking rule: a local folder and a Hub listing of the same files pick alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from paramtool import errors
from paramtool.sources.hub import pick_repo_weights
from paramtool.sources.local import _resolve_folder
from paramtool.sources.weights import WeightPick, pick_weights

SPLIT = ("tiny-00001-of-00002.gguf", "tiny-00002-of-00002.gguf")

# (the files of one folder, the pick)
LISTINGS = {
    "index first": (
        [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors",
            "model.safetensors.index.json",
            "config.json",
        ],
        WeightPick("index", ("model.safetensors.index.json",)),
    ),
    "diffusers index": (
        ["diffusion_pytorch_model.safetensors.index.json", "other.safetensors.index.json"],
        WeightPick("index", ("diffusion_pytorch_model.safetensors.index.json",)),
    ),
    "the only index": (
        ["consolidated.safetensors.index.json", "consolidated-00001.safetensors"],
        WeightPick("index", ("consolidated.safetensors.index.json",)),
    ),
    "several indexes": (
        ["a.safetensors.index.json", "b.safetensors.index.json"],
        WeightPick("index", choices=("a.safetensors.index.json", "b.safetensors.index.json")),
    ),
    "model.safetensors over others": (
        ["extra.safetensors", "model.safetensors", "adapter_model.safetensors"],
        WeightPick("safetensors", ("model.safetensors",)),
    ),
    "adapter": (
        ["adapter_model.safetensors", "adapter_config.json", "training_args.bin"],
        WeightPick("safetensors", ("adapter_model.safetensors",)),
    ),
    "diffusers single": (
        ["diffusion_pytorch_model.safetensors", "ema.safetensors"],
        WeightPick("safetensors", ("diffusion_pytorch_model.safetensors",)),
    ),
    "other safetensors, sorted": (
        ["b.safetensors", "a.safetensors", "model.gguf", "pytorch_model.bin"],
        WeightPick("safetensors", ("a.safetensors", "b.safetensors")),
    ),
    "GGUF over pickles": (
        ["pytorch_model.bin", "model-Q4_K_M.gguf", "training_args.bin"],
        WeightPick("gguf", ("model-Q4_K_M.gguf",)),
    ),
    "the model, not the projector": (
        ["mmproj-model-f16.gguf", "model-Q4_K_M.gguf"],
        WeightPick("gguf", ("model-Q4_K_M.gguf",)),
    ),
    "a projector alone": (
        ["mmproj-model-f16.gguf", "README.md"],
        WeightPick("gguf", ("mmproj-model-f16.gguf",)),
    ),
    "a split is one model": (
        [SPLIT[1], "mmproj-tiny.gguf", SPLIT[0]],
        WeightPick("gguf", SPLIT),
    ),
    "several GGUF models": (
        ["model-Q8_0.gguf", "model-Q4_K_M.gguf", *SPLIT],
        WeightPick(
            "gguf", choices=("model-Q4_K_M.gguf", "model-Q8_0.gguf", "tiny-*-of-00002.gguf")
        ),
    ),
    "pickles only": (
        ["training_args.bin", "pytorch_model.bin", "config.json"],
        WeightPick("pickle", ("pytorch_model.bin",)),  # not the trainer's training_args.bin
    ),
    "a pickle index": (
        ["pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin", "optimizer.pt"],
        WeightPick("pickle", ("pytorch_model.bin.index.json",)),
    ),
    "pickles but the trainer's": (
        ["optimizer.pt", "consolidated.00.pth", "rng_state.pth"],
        WeightPick("pickle", ("consolidated.00.pth",)),
    ),
    "nothing": (["README.md", "config.json"], WeightPick(None)),
    "only this level": (
        ["sub/model.safetensors", "sub/model.safetensors.index.json", "model.pt"],
        WeightPick("pickle", ("model.pt",)),
    ),
}


@pytest.mark.parametrize("case", list(LISTINGS))
def test_the_rule(case: str) -> None:
    names, expected = LISTINGS[case]
    assert pick_weights(names) == expected


def _local(folder: Path) -> tuple[str, tuple[str, ...]]:
    """What a local folder opens: ("index" | "files", names), or ("refused", error kind)."""
    try:
        files, index = _resolve_folder(folder)
    except errors.ParamtoolError as e:
        return "refused", (type(e).__name__,)
    if index is not None:
        return "index", (index.name,)
    return "files", tuple(f.name for f in files)


def _hub(names: list[str]) -> tuple[str, tuple[str, ...]]:
    """What the same files at the top of a Hub repo read."""
    try:
        index, files = pick_repo_weights(names, "", "org/repo")
    except errors.ParamtoolError as e:
        return "refused", (type(e).__name__,)
    if index is not None:
        return "index", (index,)
    return "files", tuple(files)


# (local answer, Hub answer): equal but where the Hub refuses GGUF, which is read locally only
AGREE = {
    "index first": (("index", ("model.safetensors.index.json",)),) * 2,
    "diffusers index": (("index", ("diffusion_pytorch_model.safetensors.index.json",)),) * 2,
    "the only index": (("index", ("consolidated.safetensors.index.json",)),) * 2,
    "several indexes": (("refused", ("SourceNotFound",)), ("refused", ("HubError",))),
    "model.safetensors over others": (("files", ("model.safetensors",)),) * 2,
    "adapter": (("files", ("adapter_model.safetensors",)),) * 2,
    "diffusers single": (("files", ("diffusion_pytorch_model.safetensors",)),) * 2,
    "other safetensors, sorted": (("files", ("a.safetensors", "b.safetensors")),) * 2,
    "GGUF over pickles": (("files", ("model-Q4_K_M.gguf",)), ("refused", ("HubError",))),
    "the model, not the projector": (
        ("files", ("model-Q4_K_M.gguf",)),
        ("refused", ("HubError",)),
    ),
    "a projector alone": (("files", ("mmproj-model-f16.gguf",)), ("refused", ("HubError",))),
    "a split is one model": (("files", (SPLIT[0],)), ("refused", ("HubError",))),
    "several GGUF models": (("refused", ("SourceNotFound",)), ("refused", ("HubError",))),
    # Pickles are read (symbolically, never unpickled) from a folder and from the Hub alike.
    "pickles only": (("files", ("pytorch_model.bin",)),) * 2,
    "a pickle index": (("index", ("pytorch_model.bin.index.json",)),) * 2,
    "pickles but the trainer's": (("files", ("consolidated.00.pth",)),) * 2,
    "nothing": (("refused", ("SourceNotFound",)), ("refused", ("HubError",))),
    "only this level": (("files", ("model.pt",)),) * 2,
}


@pytest.mark.parametrize("case", list(LISTINGS))
def test_a_folder_and_a_hub_listing_agree(tmp_path: Path, case: str) -> None:
    names, _ = LISTINGS[case]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")  # picking reads names only
    assert (_local(tmp_path), _hub(names)) == AGREE[case]


def test_pickles_and_gguf_together_read_the_gguf_locally_and_name_it_on_the_hub(
    tmp_path: Path,
) -> None:
    names = ["pytorch_model.bin", "model-Q4_K_M.gguf"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    files, index = _resolve_folder(tmp_path)
    assert index is None and [f.name for f in files] == ["model-Q4_K_M.gguf"]
    with pytest.raises(errors.HubError, match=r"GGUF files \(model-Q4_K_M\.gguf\)"):
        pick_repo_weights(names, "", "org/repo")


def test_a_subfolder_of_a_repo_is_picked_by_the_same_rule() -> None:
    names = ["fp16/model.safetensors", "bf16/model.safetensors.index.json", "bf16/a.safetensors"]
    assert pick_repo_weights(names, "bf16", "org/v") == ("bf16/model.safetensors.index.json", [])
    assert pick_repo_weights(names, "fp16/", "org/v") == (None, ["fp16/model.safetensors"])
