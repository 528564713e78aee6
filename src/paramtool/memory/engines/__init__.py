"""Serving engines' memory accounting: each module follows one engine's own source.

``base`` holds the records every engine takes and gives; ``vllm``, ``sglang``,
``llamacpp`` and ``transformers`` each expose ``ENGINE`` (an :class:`~.base.Engine`);
``generic`` is the fallback when an engine cannot model a given model.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from paramtool.errors import UsageError

if TYPE_CHECKING:
    from paramtool.memory.engines.base import Engine

# The name ``--engine`` takes -> the module of this package that follows that engine.
ENGINES: dict[str, str] = {
    "vllm": "vllm",
    "sglang": "sglang",
    "llama.cpp": "llamacpp",
    "transformers": "transformers",
    "generic": "generic",
}
_ALIASES = {"llamacpp": "llama.cpp", "llama-cpp": "llama.cpp", "hf": "transformers"}


def engine_name(name: str) -> str:
    """The registry's spelling of ``name`` (case-insensitive; ``llamacpp`` is ``llama.cpp``)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in ENGINES:
        raise UsageError(
            repr(name), f"unknown engine (known: {', '.join(ENGINES)})", param="engine"
        )
    return key


def get_engine(name: str) -> Engine:
    """The ``ENGINE`` of the module that follows engine ``name``, imported on first use."""
    module = import_module(f"{__name__}.{ENGINES[engine_name(name)]}")
    engine: Engine = module.ENGINE
    return engine


__all__ = ["ENGINES", "engine_name", "get_engine"]
