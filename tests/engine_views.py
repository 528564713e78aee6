"""ModelViews for the engine tests, built from a config and per-part byte figures."""

from __future__ import annotations

from typing import Any

from paramtool.analysis.model import describe
from paramtool.memory.dims import ModelDims
from paramtool.memory.engines.base import ModelView


def engine_view(
    config: dict[str, Any], layer: int, embd: int, output: int, **kw: Any
) -> ModelView:
    """``layer`` bytes in each decoder layer, ``embd`` of token embeddings, ``output`` of
    output head (0: tied); ``kw`` sets any other ModelView field."""
    dims = ModelDims.from_description(describe(config))
    n = len(dims.plan())
    total = layer * n + embd + output
    return ModelView(
        dims=dims, parameters=0, active_parameters=0, weights_bytes=total,
        active_weights_bytes=total, layer_bytes=(layer,) * n, embedding_bytes=embd,
        output_bytes=output, **kw,
    )  # fmt: skip
