"""``paramtool footprint``: memory at every precision, for serving and training, and GPU fit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from paramtool.cli.common import (
    JsonOpt,
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
from paramtool.errors import UsageError

if TYPE_CHECKING:
    pass

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
            help="Show only this precision (repeatable): bf16, fp8, int4-g128, nf4, Q4_K_M... "
            "Without it every precision is listed. With --train: the trained or frozen-base dtype.",
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
        str,
        typer.Option("--batch", "-b", metavar="N", help="Sequences held at once (per GPU)."),
    ] = "1",
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
        str,
        typer.Option(
            "--kv-dtype", metavar="DTYPE", help="KV cache precision: bf16, fp16, fp8, int8..."
        ),
    ] = "bf16",
    layers: Annotated[
        str | None,
        typer.Option("--layers", metavar="N", help="Transformer layers (overrides config.json)."),
    ] = None,
    heads: Annotated[
        str | None,
        typer.Option(
            "--heads", metavar="N", help="Attention (query) heads (overrides config.json)."
        ),
    ] = None,
    kv_heads: Annotated[
        str | None,
        typer.Option(
            "--kv-heads",
            metavar="N",
            help="Key/value heads: 1 for MQA, fewer than --heads for GQA.",
        ),
    ] = None,
    head_dim: Annotated[
        str | None,
        typer.Option("--head-dim", metavar="N", help="Size of one head (default hidden / heads)."),
    ] = None,
    hidden_size: Annotated[
        str | None,
        typer.Option("--hidden-size", metavar="N", help="Model width (overrides config.json)."),
    ] = None,
    intermediate_size: Annotated[
        str | None,
        typer.Option(
            "--intermediate-size", metavar="N", help="MLP width, for LoRA on gate/up/down."
        ),
    ] = None,
    overhead: Annotated[
        str,
        typer.Option(
            "--overhead",
            metavar="SIZE|%",
            help="Serving overhead (CUDA context, activations, fragmentation): a share of the "
            "weights (20%) or a fixed size per GPU (2GB, 1.5GiB).",
        ),
    ] = "20%",
    train: Annotated[
        str | None,
        typer.Option(
            "--train",
            metavar="full|lora|qlora",
            help="Training memory: full fine-tuning, LoRA on a frozen base, or QLoRA (NF4 base).",
        ),
    ] = None,
    optimizer: Annotated[
        str,
        typer.Option("--optimizer", metavar="adamw|adamw8bit|sgd", help="Optimizer for --train."),
    ] = "adamw",
    zero: Annotated[
        str,
        typer.Option("--zero", metavar="0-3", help="DeepSpeed ZeRO stage sharding over --gpus."),
    ] = "0",
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
    lora_rank: Annotated[str, typer.Option("--lora-rank", metavar="R", help="LoRA rank r.")] = "16",
    lora_targets: Annotated[
        str,
        typer.Option(
            "--lora-targets",
            metavar="LIST",
            help="Adapted linears: all-linear, attention, mlp, qv, or a list like q,k,v,o.",
        ),
    ] = "all-linear",
    activations: Annotated[
        str,
        typer.Option(
            "--activations",
            metavar="MODE",
            help="Training activations (Korthikanti et al. 2022), needs --context: none "
            "(excluded), full, flash (no attention matrix) or recompute (checkpointing).",
        ),
    ] = "none",
    gpu: Annotated[
        str | None,
        typer.Option(
            "--gpu",
            "-g",
            metavar="NAME",
            help="Check the fit on a GPU: h100-80gb, a100-40gb, "
            "rtx4090, mi300x... (see --list-gpus).",
        ),
    ] = None,
    list_gpus: Annotated[
        bool,
        typer.Option("--list-gpus", help="List the known GPUs, their usable memory and sources."),
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

    Give --params N, or a checkpoint for the exact count and its config.json.
    """
    if units.lower() not in ("gb", "gib"):
        raise UsageError(f"--units {units!r}", "use gb or gib")
    binary = units.lower() == "gib"

    if list_gpus or list_dtypes:
        _print_lists(list_gpus, list_dtypes, json_, binary)
        return

    from paramtool import api
    from paramtool.render.progress import count_progress

    with count_progress("Reading shard headers", enabled=not json_, min_total=8) as progress:
        fp = api.footprint(
            sources or None,
            params=params,
            dtype=dtype,
            context=context,
            batch=batch,
            kv_dtype=kv_dtype,
            overhead=overhead,
            train=train,
            optimizer=optimizer,
            zero=zero,
            gpus=gpus,
            gpu=gpu,
            lora_rank=lora_rank,
            lora_targets=lora_targets,
            activations=activations,
            layers=layers,
            heads=heads,
            kv_heads=kv_heads,
            head_dim=head_dim,
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            revision=revision,
            token=token,
            subfolder=subfolder,
            progress=progress,
        )
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
