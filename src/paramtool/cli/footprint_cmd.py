"""``paramtool footprint``: memory at every precision, for serving and training, and GPU fit."""

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
    flag,
    handle_errors,
    print_json,
    stdout_console,
    warn,
)
from paramtool.cli.root import app
from paramtool.errors import UsageError

SourcesOpt = Annotated[
    list[str] | None,
    typer.Argument(
        help="Checkpoint to take the exact parameter count and config.json from: a .safetensors "
        "file, a folder, several files, or a Hub repo id. Or give --params instead.",
        metavar="CHECKPOINT",
        show_default=False,
    ),
]


@app.command("footprint")
@handle_errors
def footprint_command(
    sources: SourcesOpt = None,
    params: Annotated[
        str | None,
        typer.Option(
            "--params",
            "-p",
            metavar="N",
            help="Parameter count: 70B, 1.5T, 405M, 7e9, 8_030_261_248 (decimal: B = 10^9).",
        ),
    ] = None,
    dtype: Annotated[
        list[str] | None,
        typer.Option(
            "--dtype",
            "-d",
            metavar="DTYPE",
            help="Show only this precision (repeatable): bf16, fp8, int4-g128, nf4, Q4_K_M..., "
            "'stored' for the checkpoint as stored, 'all' for every precision. Without it: "
            "the checkpoint as stored and nine common precisions. With --train: the trained "
            "or frozen-base dtype.",
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            "-c",
            metavar="TOKENS",
            help="Tokens per sequence for the KV cache (and activations): 8192, or 128k = 131,072.",
        ),
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch",
            "-b",
            metavar="N",
            help="Sequences held at once (per GPU), for the KV cache or training activations.",
            show_default="1",
        ),
    ] = None,
    encoder_length: Annotated[
        str | None,
        typer.Option(
            "--encoder-length",
            metavar="TOKENS",
            help="Encoder-decoder models: input tokens the cross-attention caches "
            "(default 512).",
        ),
    ] = None,
    kv_dtype: Annotated[
        str | None,
        typer.Option(
            "--kv-dtype",
            metavar="DTYPE",
            help="KV cache precision: bf16, fp16, fp8, int8...",
            show_default="bf16",
        ),
    ] = None,
    layers: LayersOpt = None,
    heads: HeadsOpt = None,
    kv_heads: KvHeadsOpt = None,
    head_dim: HeadDimOpt = None,
    hidden_size: HiddenSizeOpt = None,
    intermediate_size: Annotated[
        str | None,
        typer.Option(
            "--intermediate-size", metavar="N", help="MLP width, for LoRA on gate/up/down."
        ),
    ] = None,
    overhead: Annotated[
        str | None,
        typer.Option(
            "--overhead",
            metavar="SIZE|%",
            help="Overhead (CUDA context, activations, fragmentation): a share of the "
            "weights (20%) or a fixed size per GPU (2GB, 1.5GiB). Serving: 20% by default; "
            "--train: none unless given, then added on every GPU.",
            show_default="20%",
        ),
    ] = None,
    train: Annotated[
        str | None,
        typer.Option(
            "--train",
            metavar="full|lora|qlora",
            help="Training memory: full fine-tuning, LoRA on a frozen base, or QLoRA (NF4 base).",
        ),
    ] = None,
    optimizer: Annotated[
        str | None,
        typer.Option(
            "--optimizer",
            metavar="adamw|adamw8bit|sgd",
            help="Optimizer for --train.",
            show_default="adamw",
        ),
    ] = None,
    zero: Annotated[
        str | None,
        typer.Option(
            "--zero",
            metavar="0-3",
            help="DeepSpeed ZeRO stage sharding over --gpus.",
            show_default="0",
        ),
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option(
            "--gpus",
            "-n",
            metavar="N",
            help="GPU count: tensor parallelism for serving, ZeRO data parallelism for training. "
            "Without it the smallest count that fits is found (with --gpu).",
        ),
    ] = None,
    lora_rank: Annotated[
        str | None,
        typer.Option("--lora-rank", metavar="R", help="LoRA rank r.", show_default="16"),
    ] = None,
    lora_targets: Annotated[
        str | None,
        typer.Option(
            "--lora-targets",
            metavar="LIST",
            help="Adapted linears: all-linear, attention, mlp, qv, or a list like q,k,v,o.",
            show_default="all-linear",
        ),
    ] = None,
    activations: Annotated[
        str | None,
        typer.Option(
            "--activations",
            metavar="MODE",
            help="Training activations (Korthikanti et al. 2022), needs --context: none "
            "(excluded), full, flash (no attention matrix) or recompute (checkpointing).",
            show_default="none",
        ),
    ] = None,
    gpu: Annotated[
        str | None,
        typer.Option(
            "--gpu",
            "-g",
            metavar="NAME",
            help="Check the fit on a GPU: h100-80gb, a100-40gb, "
            "rtx4090, l40s, mi300x, m3-max-128gb... (see --list-gpus).",
        ),
    ] = None,
    list_gpus: Annotated[
        bool,
        typer.Option(
            "--list-gpus",
            help="List the known GPUs: usable memory, bandwidth, peak FLOP/s and sources.",
        ),
    ] = False,
    list_dtypes: Annotated[
        bool, typer.Option("--list-dtypes", help="List every dtype with its bits per parameter.")
    ] = False,
    units: UnitsOpt = "gb",
    json_: JsonOpt = False,
    revision: RevisionOpt = None,
    token: TokenOpt = None,
    subfolder: SubfolderOpt = None,
) -> None:
    """Memory to hold a model at every precision: KV cache, serving, training, GPUs needed.

    Give --params N, or a checkpoint for the exact count and its config.json. An option
    that would change nothing in what was asked for is refused, not ignored.
    """
    if units.lower() not in ("gb", "gib"):
        raise UsageError(f"--units {units!r}", "use gb or gib")
    binary = units.lower() == "gib"

    given: dict[str, Any] = {
        "params": params,
        "dtype": dtype or None,
        "context": context,
        "batch": batch,
        "encoder_length": encoder_length,
        "kv_dtype": kv_dtype,
        "overhead": overhead,
        "train": train,
        "optimizer": optimizer,
        "zero": zero,
        "gpus": gpus,
        "gpu": gpu,
        "lora_rank": lora_rank,
        "lora_targets": lora_targets,
        "activations": activations,
        "layers": layers,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "revision": revision,
        "token": token,
        "subfolder": subfolder,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if list_gpus or list_dtypes:
        if given or sources:
            what = flag(next(iter(given))) if given else "CHECKPOINT"
            raise UsageError(what, "--list-gpus and --list-dtypes print their table alone")
        _print_lists(list_gpus, list_dtypes, json_, binary)
        return

    from paramtool import api
    from paramtool.render.progress import count_progress

    with count_progress("Reading shard headers", enabled=not json_, min_total=8) as progress:
        fp = api.footprint(sources or None, **given, progress=progress)
    cross = fp.kv is not None and fp.kv.encoder_length is not None
    refuse_unused(given, checkpoint=bool(sources), cross_attention=cross)  # after value checks
    for w in fp.warnings:
        warn(w)
    if json_:
        print_json(fp.to_dict(binary=binary))
        return
    from paramtool.render.footprint_tables import print_report

    print_report(stdout_console(), fp, binary)


def _print_lists(gpus: bool, dtypes: bool, json_: bool, binary: bool) -> None:
    from paramtool.memory.footprint_json import dtypes_json, gpus_json
    from paramtool.render.footprint_tables import dtypes_table, gpus_table

    if json_:
        doc: dict[str, object] = {}
        if gpus:
            doc.update(gpus_json())
        if dtypes:
            doc.update(dtypes_json())
        print_json(doc)
        return
    console = stdout_console()
    if gpus:
        console.print(gpus_table(binary))
    if dtypes:
        console.print(dtypes_table())


def refuse_unused(given: dict[str, Any], *, checkpoint: bool, cross_attention: bool) -> None:
    """One error line for the first option given that would change nothing, never a silent
    ignore. ``given`` maps the options given (and only those) to their values;
    ``cross_attention``: the KV cache estimated has an encoder-decoder's cross-attention."""
    for name in given:
        why = _no_effect(name, given, checkpoint, cross_attention)
        if why is not None:
            raise UsageError(flag(name), why)


def _no_effect(name: str, given: dict[str, Any], checkpoint: bool, cross: bool) -> str | None:
    """Why option ``name`` would change nothing beside the others given; None when it counts."""
    train = given.get("train")
    if name in ("kv_dtype", "encoder_length") and ("context" not in given or train is not None):
        return "sizes the KV cache, which needs --context and no --train"
    if name == "encoder_length" and not cross:
        return "sizes an encoder-decoder's cross-attention, and this model has none"
    if name == "batch":
        used = "context" in given if train is None else given.get("activations", "none") != "none"
        if not used:
            return (
                "multiplies the KV cache (--context) or the training activations "
                "(--activations), and neither is asked for"
            )
    if name == "optimizer" and train is None:  # --zero, --activations: the core's own rule
        return "only applies to --train"
    if name in ("lora_rank", "lora_targets") and str(train).lower() not in ("lora", "qlora"):
        return "only applies to --train lora or qlora"
    if name == "gpus" and train is None and "gpu" not in given:
        return "for serving it is the tensor-parallel count of a --gpu fit: give --gpu"
    if name == "dtype" and train is not None and len(given["dtype"]) > 1:
        return "--train estimates one dtype (the trained weights or the frozen base): give it once"
    if name in ("revision", "token", "subfolder") and not checkpoint:
        return "only applies to a Hub CHECKPOINT, and none is given"
    return None
