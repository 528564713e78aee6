"""Which files of a folder or a repo listing hold the weights: one rule for both.
"""

from __future__ import annotations

from paramtool.errors import UnsafeFormat

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def _pickle_refusal(path: str) -> UnsafeFormat:
    return UnsafeFormat(
        path,
        "pickle checkpoints can execute arbitrary code when loaded, so paramtool never opens them; "
        "convert to safetensors first (e.g. `safetensors.torch.save_file("
        "torch.load(p, weights_only=True), "
        "'model.safetensors')` in a sandbox, or the Hub's convert space)",
    )


def is_pickle_name(name: str) -> bool:
    return name.lower().endswith(PICKLE_SUFFIXES)
