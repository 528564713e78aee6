"""``paramtool fit``: what fits on given GPUs with a serving engine, and what to change if not."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from paramtool.cli.common import (
    HeadDimOpt,
    HeadsOpt,
    HiddenSizeOpt,
    JsonOpt,
    KvHeadsOpt,
    LayersOpt,
    RevisionOpt,
    SubfolderOpt,
    TokenOpt,
    UnitsOpt,
    handle_errors,
    print_json,
    stdout_console,
    warn,
)
from paramtool.cli.root import app

NOT_FIT = 1  # the exit status when the model does not fit (2: a usage error)

SourcesOpt = Annotated[
    list[str] | None,
    typer.Argument(
        help="Checkpoint: a .safetensors or .gguf file, a folder, several files, or a Hub "
        "repo id. Or give --params and the dimension flags instead.",
        metavar="SOURCE",
        show_default=False,
    ),
]


def _opt(*names: str, metavar: str, help: str, **kw: Any) -> Any:
    return typer.Option(*names, metavar=metavar, help=help, show_default=False, **kw)


@app.command("fit")
def fit_command(
    sources: SourcesOpt = None,
    gpu: Annotated[
        list[str] | None,
        _opt(
            "--gpu",
            "-g",
            metavar="GPU[:N]",
            help="A device (repeatable): a known GPU (h100-80gb), N of them (h100-80gb:4), a "
            "custom size (48GB, 24GiB) or Apple silicon (m3-max-128gb).",
        ),
    ] = None,
    engine: Annotated[
        str | None,
        _opt(
            "--engine",
            "-e",
            metavar="ENGINE",
            help="vllm, sglang, llama.cpp, transformers or generic (default: vllm for "
            "safetensors, llama.cpp for GGUF).",
        ),
    ] = None,
    context: Annotated[
        str | None,
        _opt(
            "--context",
            "-c",
            metavar="TOKENS",
            help="Tokens per sequence (max_model_len, -c): 8192, or 128k = 131,072 "
            "(default: the model's max_position_embeddings).",
        ),
    ] = None,
    batch: Annotated[
        str | None,
        _opt("--batch", "-b", metavar="N", help="Concurrent sequences (default 1)."),
    ] = None,
    dtype: Annotated[
        str | None,
        _opt(
            "--dtype",
            "-d",
            metavar="DTYPE",
            help="Serve the weights at this precision (bf16, fp8, int4-g128, Q4_K_M...); "
            "default: as stored.",
        ),
    ] = None,
    kv_dtype: Annotated[
        str | None,
        _opt(
            "--kv-dtype",
            metavar="DTYPE",
            help="KV cache precision: bf16, fp8, q8_0... (default: the engine's, the model's "
            "dtype).",
        ),
    ] = None,
    tensor_parallel: Annotated[
        str | None,
        _opt(
            "--tensor-parallel",
            "--tp",
            metavar="N",
            help="Tensor-parallel degree (vLLM, SGLang; default: every GPU given).",
        ),
    ] = None,
    gpu_memory_utilization: Annotated[
        str | None,
        _opt(
            "--gpu-memory-utilization",
            metavar="F",
            help="vLLM's share of each GPU (default 0.9); SGLang's mem_fraction_static.",
        ),
    ] = None,
    max_num_batched_tokens: Annotated[
        str | None,
        _opt(
            "--max-num-batched-tokens",
            metavar="N",
            help="Tokens per forward pass (vLLM/SGLang chunked prefill), sizing the "
            "activation peak (default: the engine's).",
        ),
    ] = None,
    kv_memory: Annotated[
        str | None,
        _opt(
            "--kv-memory",
            metavar="SIZE",
            help="A given KV pool per GPU (vLLM's kv_cache_memory_bytes): skip the profiling "
            "estimate and say how many tokens and sequences it holds.",
        ),
    ] = None,
    gpu_layers: Annotated[
        str | None,
        _opt(
            "--gpu-layers",
            "--ngl",
            metavar="N",
            help="llama.cpp: layers offloaded to the GPUs (-ngl; default: all that fit).",
        ),
    ] = None,
    cpu_moe: Annotated[
        str | None,
        _opt(
            "--cpu-moe",
            metavar="N",
            help="llama.cpp: keep the routed experts of the first N layers in system RAM "
            "(--n-cpu-moe).",
        ),
    ] = None,
    ram: Annotated[
        str | None,
        _opt("--ram", metavar="SIZE", help="System RAM available (64GB): offload must fit it."),
    ] = None,
    flash_attention: Annotated[
        str | None,
        _opt(
            "--flash-attention",
            "--fa",
            metavar="on|off",
            help="llama.cpp: flash attention (-fa; default: off as these buffers are sized).",
        ),
    ] = None,
    draft: Annotated[
        list[str] | None,
        _opt(
            "--draft",
            metavar="SOURCE",
            help="A speculative-decoding draft model sharing the GPUs: its weights and KV cache.",
        ),
    ] = None,
    mmproj: Annotated[
        list[str] | None,
        _opt(
            "--mmproj",
            metavar="SOURCE",
            help="llama.cpp: a multimodal projector file (its weights and activations).",
        ),
    ] = None,
    mtp: Annotated[
        bool,
        typer.Option(
            "--mtp",
            help="Load the checkpoint's MTP head for speculative decoding, as "
            "vLLM's --speculative-config '{\"method\": \"mtp\"}' or SGLang's EAGLE-MTP does "
            "(its weights and one more layer's KV cache).",
        ),
    ] = False,
    params: Annotated[
        str | None,
        _opt(
            "--params",
            "-p",
            metavar="N",
            help="No checkpoint: the parameter count (70B), a dense model at --dtype (bf16).",
        ),
    ] = None,
    layers: LayersOpt = None,
    heads: HeadsOpt = None,
    kv_heads: KvHeadsOpt = None,
    head_dim: HeadDimOpt = None,
    hidden_size: HiddenSizeOpt = None,
    units: UnitsOpt = "gb",
    json_: JsonOpt = False,
    revision: RevisionOpt = None,
    token: TokenOpt = None,
    subfolder: SubfolderOpt = None,
) -> None:
    """What fits on these GPUs with a serving engine: KV pool, max context, concurrency.

    Follows the engine's own memory accounting (vLLM, SGLang, llama.cpp, transformers) and
    says what to change when it does not fit. Exit status 0 when it fits, 1 when it does
    not, 2 on a usage error.
    """
    code = _run(sources, gpu, units, json_, {
        "engine": engine,
        "context": context,
        "batch": batch,
        "dtype": dtype,
        "kv_dtype": kv_dtype,
        "tensor_parallel": tensor_parallel,
        "gpu_memory_utilization": gpu_memory_utilization,
        "max_num_batched_tokens": max_num_batched_tokens,
        "kv_memory": kv_memory,
        "gpu_layers": gpu_layers,
        "cpu_moe": cpu_moe,
        "ram": ram,
        "flash_attention": flash_attention,
        "draft": draft or None,
        "mmproj": mmproj or None,
        "mtp": mtp or None,
        "params": params,
        "layers": layers,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_size": hidden_size,
        "revision": revision,
        "token": token,
        "subfolder": subfolder,
    })  # fmt: skip
    if code:
        raise typer.Exit(code)


@handle_errors
def _run(
    sources: list[str] | None,
    gpu: list[str] | None,
    units: str,
    json_: bool,
    options: dict[str, Any],
) -> int:
    """The command's work, inside the error table; its exit status."""
    from paramtool import api
    from paramtool.errors import UsageError
    from paramtool.render.progress import count_progress

    if not gpu:
        raise UsageError("", "give the devices: --gpu h100-80gb, --gpu 24GB:2 ...", param="gpu")
    given = {k: v for k, v in options.items() if v is not None}
    with count_progress("Reading shard headers", enabled=not json_, min_total=8) as progress:
        result = api.fit(sources or None, gpu=gpu, **given, progress=progress)
    if json_:
        print_json(result.to_dict())
    else:
        from paramtool.render.fit_tables import print_report

        print_report(stdout_console(), result, units == "gib")
    if not result.fits:
        warn(f"does not fit: {result.why_not or 'over budget'}")
        return NOT_FIT
    return 0
