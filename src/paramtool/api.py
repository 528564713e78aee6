"""The public Python API: what every command answers, as typed frozen records.

Each function here is what one command does, minus the printing: ``paramtool inspect
SOURCE --json`` prints ``paramtool.inspect(SOURCE).to_dict()``, and so on for every
command. Nothing here prints, draws or reads the terminal; progress, when wanted, comes
through a ``progress(done, total)`` callback.

A *source* is what the command line accepts: a path (a ``.safetensors`` or ``.gguf``
file, a folder, sharded or not), a list of paths, or one Hub repo id
(``org/name``, ``org/name@revision``, ``hf://org/name``), read header-only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

from paramtool.errors import UsageError

if TYPE_CHECKING:
    from paramtool.analysis.inspection import Inspection
    from paramtool.checks.findings import Report
    from paramtool.checks.rules import Rule, RuleSet
    from paramtool.memory.engines.base import Device
    from paramtool.memory.estimate import Footprint
    from paramtool.memory.fit import Fit
    from paramtool.records import Checkpoint
    from paramtool.values.convert import ConvertReport
    from paramtool.values.diff import DiffReport
    from paramtool.values.hashing import HashReport
    from paramtool.values.stats import StatsReport
    from paramtool.values.verify import VerifyReport

Source = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]
ProgressCallback = Callable[[int, int], None]  # (done, total): files for headers, else bytes


def _paths(source: Source, what: str = "source") -> list[str]:
    if isinstance(source, str | os.PathLike):
        return [os.fspath(source)]
    if (
        isinstance(source, Sequence)
        and source
        and all(isinstance(s, str | os.PathLike) for s in source)
    ):
        return [os.fspath(s) for s in source]
    raise UsageError(what, "give a path, a list of paths, or a Hub repo id (org/name)")


def _bytes_progress(progress: ProgressCallback | None, total: int) -> Callable[[int], None] | None:
    """Adapt ``progress(done, total)`` to the readers' ``advance(nbytes)``, thread-safely."""
    if progress is None:
        return None
    import threading

    lock = threading.Lock()
    done = 0
    progress(0, total)

    def advance(n: int) -> None:
        nonlocal done
        with lock:
            done += n
            progress(done, total)

    return advance


def open_checkpoint(
    source: Source,
    *,
    revision: str | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    progress: ProgressCallback | None = None,
) -> Checkpoint:
    """Open a checkpoint, headers only: its files, tensors, index and config.

    >>> ck = open_checkpoint("examples/tiny-llama")
    >>> ck.total_parameters, len(ck.tensors)
    (1217664, 39)
    """
    from paramtool.sources import open_source

    return open_source(
        _paths(source), revision=revision, token=token, subfolder=subfolder, progress=progress
    )


def inspect(
    source: Source,
    *,
    revision: str | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    base: Source | None = None,
    progress: ProgressCallback | None = None,
) -> Inspection:
    """What is in a checkpoint: parameters, dtypes, anatomy, layers, quantization, adapter, MoE.

    Reads headers only. ``base`` is a PEFT adapter's base model (for its share of it
    and the merged size); for a Hub adapter the base it names is tried when not given.

    >>> r = inspect("examples/tiny-llama")
    >>> r.total_parameters
    1217664
    >>> r.by_category["attention"].parameters
    163840
    """
    _import_while_fetching(source)
    checkpoint = open_checkpoint(
        source, revision=revision, token=token, subfolder=subfolder, progress=progress
    )
    from paramtool.analysis.breakdown import build
    from paramtool.analysis.inspection import Inspection

    notes: list[str] = []
    base_checkpoint = _open_base(checkpoint, base, token, notes)
    return Inspection(build(checkpoint, base=base_checkpoint), base_checkpoint, tuple(notes))


def _import_while_fetching(source: Source) -> None:
    """For a source that is no local path (a Hub repo, most likely), import the analysis on
    a daemon thread: it runs while the first requests are in flight rather than before."""
    one = source[0] if isinstance(source, list | tuple) and len(source) == 1 else source
    if not isinstance(one, str) or os.path.lexists(one):
        return
    from paramtool.sources import reading_started

    if reading_started():  # the console script's head start: its requests are in flight
        import paramtool.analysis.breakdown
        import paramtool.analysis.inspection  # noqa: F401

        return  # imported here, so no thread is left importing if the process ends at once
    import threading

    def load() -> None:
        try:
            import paramtool.analysis.breakdown
            import paramtool.analysis.inspection  # noqa: F401
        except BaseException:  # imported again (and raised) where it is used
            pass

    threading.Thread(target=load, name="paramtool-import", daemon=True).start()


def _open_base(
    checkpoint: Checkpoint, base: Source | None, token: str | None, notes: list[str]
) -> Checkpoint | None:
    """The adapter's base: ``base``, else (for a Hub adapter) its ``base_model_name_or_path``.

    A base named by a Hub adapter that cannot be read (gated, offline, gone) is a note,
    not an error: the adapter is still described, without the share and merged size.
    """
    if base is None and (checkpoint.hub is None or checkpoint.adapter_config is None):
        return None
    from paramtool.analysis.adapters import base_reference
    from paramtool.analysis.anatomy import classify
    from paramtool.errors import ParamtoolError
    from paramtool.sources.hub_source import is_hub_source

    ref = base_reference(checkpoint.adapter_config)
    if base is None and ref is None:
        return None
    is_adapter = any(classify(t.name).category == "adapter" for t in checkpoint.tensors)
    if base is not None:
        paths = _paths(base, "base")
        if not is_adapter:
            raise UsageError(" ".join(paths), "the checkpoint is not a PEFT adapter", param="base")
        return open_checkpoint(paths, token=token)
    if not is_adapter or ref is None or not is_hub_source(ref):
        return None
    try:
        return open_checkpoint(ref, token=token)
    except ParamtoolError as e:
        notes.append(f"base model {ref} not read ({e}); give --base SOURCE")
        return None


def footprint(
    source: Source | None = None,
    *,
    params: int | str | None = None,
    dtype: str | Sequence[str] | None = None,
    context: int | str | None = None,
    batch: int | str = 1,
    encoder_length: int | str | None = None,
    kv_dtype: str = "bf16",
    overhead: str | None = None,
    train: str | None = None,
    optimizer: str = "adamw",
    zero: int | str = 0,
    gpus: int | str | None = None,
    gpu: str | None = None,
    lora_rank: int | str = 16,
    lora_targets: str = "all-linear",
    activations: str = "none",
    layers: int | str | None = None,
    heads: int | str | None = None,
    kv_heads: int | str | None = None,
    head_dim: int | str | None = None,
    hidden_size: int | str | None = None,
    intermediate_size: int | str | None = None,
    revision: str | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    progress: ProgressCallback | None = None,
) -> Footprint:
    """Memory to hold a model: weights at every precision, KV cache, serving, training, GPU fit.

    Give ``params`` (``"70B"``, ``8_030_261_248``) or a ``source`` to read the exact count
    and ``config.json`` from. Whole-number arguments take ints or the command line's
    strings (``context="128k"`` is 131,072).

    >>> fp = footprint(params="70B", dtype="bf16")
    >>> fp.rows[0].precision.weights_bytes
    140000000000
    """
    from paramtool import dtypes
    from paramtool.memory.dims import ModelDims
    from paramtool.memory.estimate import estimate
    from paramtool.memory.gpus import lookup_gpu
    from paramtool.memory.overhead import parse_overhead
    from paramtool.memory.training import parse_lora_targets
    from paramtool.units import parse_count

    name = None
    description = None
    if source is not None and params is not None:
        raise UsageError(
            "", lambda p: f"give {p('params')} or a checkpoint, not both", param="params"
        )
    if source is not None:
        from paramtool.analysis.breakdown import build

        checkpoint = open_checkpoint(
            source, revision=revision, token=token, subfolder=subfolder, progress=progress
        )
        # Logical parameters: a quantized checkpoint's packed weights unpacked, scales not counted.
        breakdown = build(checkpoint)
        parameters = breakdown.logical_parameters
        if parameters < 1:
            raise UsageError(checkpoint.source, "the checkpoint holds no parameters")
        name = checkpoint.source
        description = breakdown.description if checkpoint.config else None
        warnings = checkpoint.warnings
    elif params is not None:
        parameters = params if isinstance(params, int) else parse_count(params)
        warnings = ()
    else:
        raise UsageError(
            "footprint",
            lambda p: f"give {p('params')} N (e.g. 70B) or a checkpoint to read it from",
        )

    dims = ModelDims.from_description(
        description,
        layers=_whole("layers", layers),
        heads=_whole("heads", heads),
        kv_heads=_whole("kv_heads", kv_heads),
        head_dim=_whole("head_dim", head_dim),
        hidden_size=_whole("hidden_size", hidden_size),
        intermediate_size=_whole("intermediate_size", intermediate_size),
    )
    names = [dtype] if isinstance(dtype, str) else list(dtype or ())
    from paramtool.memory.precisions import stored_weights

    return estimate(
        parameters,
        stored=stored_weights(breakdown) if source is not None else None,
        source=name,
        dims=dims,
        dtype_names=names or None,
        context=_whole("context", context, kilo=True),
        encoder_length=_whole("encoder_length", encoder_length, kilo=True),
        batch=_whole("batch", batch) or 1,
        kv_dtype=dtypes.lookup(kv_dtype),
        overhead=parse_overhead(overhead) if overhead is not None else None,
        train=train.lower() if train else None,
        optimizer=optimizer.lower(),
        zero=_whole("zero", zero, low=0) or 0,
        gpus=_whole("gpus", gpus),
        lora_rank=_whole("lora_rank", lora_rank) or 16,
        lora_targets=parse_lora_targets(lora_targets),
        activations=activations.lower(),
        gpu=lookup_gpu(gpu) if gpu is not None else None,
        warnings=warnings,
    )


def _whole(param: str, value: int | str | None, *, kilo: bool = False, low: int = 1) -> int | None:
    """A whole-number argument: an int, or text as the command line takes it."""
    from paramtool.units import parse_whole

    if value is None:
        return None
    return parse_whole(param, value, kilo=kilo, low=low)


def fit(
    source: Source | None = None,
    *,
    gpu: str | Device | Sequence[str | Device],
    engine: str | None = None,
    context: int | str | None = None,
    batch: int | str = 1,
    dtype: str | None = None,
    kv_dtype: str | None = None,
    tensor_parallel: int | str | None = None,
    gpu_memory_utilization: float | str | None = None,
    max_num_batched_tokens: int | str | None = None,
    kv_memory: int | str | None = None,
    gpu_layers: int | str | None = None,
    cpu_moe: int | str | None = None,
    ram: int | str | None = None,
    flash_attention: bool | str | None = None,
    draft: Source | None = None,
    mmproj: Source | None = None,
    mtp: bool = False,
    params: int | str | None = None,
    layers: int | str | None = None,
    heads: int | str | None = None,
    kv_heads: int | str | None = None,
    head_dim: int | str | None = None,
    hidden_size: int | str | None = None,
    revision: str | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    progress: ProgressCallback | None = None,
) -> Fit:
    """What fits on ``gpu`` with a serving engine: the KV pool, max context, concurrency.

    ``gpu``: ``--gpu`` spellings (``"h100-80gb:4"``, ``"48GB"``, ``"m3-max-128gb"``, a list
    of them) or :class:`~paramtool.memory.engines.base.Device` records. ``engine``: vllm,
    sglang, llama.cpp, transformers or generic (default: vLLM for safetensors, llama.cpp
    for GGUF). ``None`` elsewhere is the engine's own default.

    >>> r = fit(params="8B", layers=32, heads=32, kv_heads=8, head_dim=128,
    ...         gpu="24GB", engine="generic", context="8k")
    >>> r.fits, r.engine
    (True, 'generic')
    """
    from paramtool import dtypes
    from paramtool.analysis.breakdown import build
    from paramtool.memory import fit as fitting
    from paramtool.memory.dims import ModelDims
    from paramtool.memory.engines.base import Request
    from paramtool.units import parse_count

    if source is not None and params is not None:
        raise UsageError(
            "", lambda p: f"give {p('params')} or a checkpoint, not both", param="params"
        )
    served = dtypes.lookup(dtype) if dtype is not None else None
    flags = {
        "layers": _whole("layers", layers),
        "heads": _whole("heads", heads),
        "kv_heads": _whole("kv_heads", kv_heads),
        "head_dim": _whole("head_dim", head_dim),
        "hidden_size": _whole("hidden_size", hidden_size),
    }

    def view(src: Source, served: Any = None, flags: Any = None, **kw: Any) -> Any:
        """A checkpoint's view, at ``served`` (None: as stored)."""
        checkpoint = open_checkpoint(src, token=token, **kw)
        breakdown = build(checkpoint)
        if breakdown.logical_parameters < 1:
            raise UsageError(checkpoint.source, "the checkpoint holds no parameters")
        desc = breakdown.description if checkpoint.config else None
        dims = ModelDims.from_description(desc, **(flags or {}))
        return fitting.model_view(breakdown, dims, served, name=checkpoint.source)

    if source is not None:
        model = view(
            source, served, flags, revision=revision, subfolder=subfolder, progress=progress
        )
    elif params is not None:
        count = params if isinstance(params, int) else parse_count(params)
        model = fitting.params_view(count, ModelDims.from_description(None, **flags), served)
    else:
        raise UsageError(
            "fit", lambda p: f"give {p('params')} N (e.g. 70B) or a checkpoint to read it from"
        )
    request = Request(
        devices=fitting.devices_of(gpu),
        context=_whole("context", context, kilo=True),
        batch=_whole("batch", batch) or 1,
        kv_dtype=dtypes.lookup(kv_dtype) if kv_dtype is not None else None,
        tensor_parallel=_whole("tensor_parallel", tensor_parallel),
        gpu_memory_utilization=fitting.utilization(
            gpu_memory_utilization, "gpu_memory_utilization"
        ),
        max_num_batched_tokens=_whole("max_num_batched_tokens", max_num_batched_tokens, kilo=True),
        kv_memory=fitting.size_of(kv_memory, "kv_memory"),
        gpu_layers=_whole("gpu_layers", gpu_layers, low=0),
        cpu_moe=_whole("cpu_moe", cpu_moe, low=0),
        ram_bytes=fitting.size_of(ram, "ram"),
        flash_attention=fitting.switch(flash_attention, "flash_attention"),
        draft=view(_paths(draft, "draft")) if draft is not None else None,
        mmproj=view(_paths(mmproj, "mmproj")) if mmproj is not None else None,
        mtp=bool(mtp),
    )
    return fitting.fit(model, request, engine)


def check(
    source: Source,
    rules: Mapping[str, Any] | RuleSet | Sequence[Rule],
    *,
    revision: str | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    config: str | None = None,
    progress: ProgressCallback | None = None,
) -> Report:
    """Gate a checkpoint: every rule's finding, and whether all of them passed.

    ``rules`` is a mapping in the config file's vocabulary (``{"max_size": "16GB",
    "allow_dtypes": ["bf16"], "no_nan": True}``). ``config`` names where the rules came
    from, for the report.

    >>> report = check("examples/tiny-llama", {"dtype": "bf16", "max_size": "3MB"})
    >>> report.passed, report.exit_code
    (True, 0)
    """
    from paramtool.checks.config import rules_from_table
    from paramtool.checks.evaluate import evaluate
    from paramtool.checks.rules import RuleSet, finalize

    if isinstance(rules, RuleSet):
        chosen = finalize([rules])
    elif isinstance(rules, Mapping):
        chosen = finalize([rules_from_table(rules)])
    else:
        chosen = tuple(rules)
    # Pickled weights are read symbolically like any checkpoint: every rule evaluates on
    # them (safetensors_only fails, no_unsafe_pickle judges their globals).
    checkpoint = open_checkpoint(
        source, revision=revision, token=token, subfolder=subfolder, progress=progress
    )
    return evaluate(checkpoint, chosen, config=config)


def _values_checkpoint(
    source: Source,
    *,
    revision: str | None,
    token: str | None,
    subfolder: str | None,
    download: bool,
) -> Checkpoint:
    from paramtool.sources.download import open_values_source

    checkpoint = open_values_source(
        _paths(source), revision=revision, token=token, subfolder=subfolder, download=download
    )
    if any(f.format == "pickle" for f in checkpoint.files):
        # Read from the storages' bytes, never unpickled: refused when unsafe, big-endian,
        # compressed, or a view too sparse to gather (one line, before any value is read).
        from paramtool.values.pickles import check_pickles

        check_pickles(checkpoint)
    return checkpoint


def stats(
    source: Source,
    *,
    filter: str | None = None,
    download: bool = False,
    workers: int | None = None,
    revision: str | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    progress: ProgressCallback | None = None,
) -> StatsReport:
    """Min, max, mean, std, mean |x|, zeros, NaN and Inf of every tensor, streamed.

    Reads values (in bounded chunks): a Hub repo needs ``download=True``.

    >>> r = stats("examples/tiny-llama")
    >>> r.total.count, r.total.nan
    (1217664, 0)
    """
    from paramtool.patterns import compile_filter
    from paramtool.values.reader import CODECS, select
    from paramtool.values.stats import compute_stats

    pattern = compile_filter(filter)
    checkpoint = _values_checkpoint(
        source, revision=revision, token=token, subfolder=subfolder, download=download
    )
    total = sum(t.nbytes for _, t in select(checkpoint, pattern) if t.dtype in CODECS)
    return compute_stats(
        checkpoint, pattern=pattern, workers=workers, progress=_bytes_progress(progress, total)
    )


def digest(
    source: Source,
    *,
    download: bool = False,
    workers: int | None = None,
    revision: str | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    progress: ProgressCallback | None = None,
) -> HashReport:
    """SHA-256 of every file, a digest of every tensor, and one digest of all the weights.

    The weights digest is the same for the same tensors however they are sharded.

    >>> r = digest("examples/tiny-llama")
    >>> len(r.files), len(r.weights_digest)
    (1, 64)
    """
    from paramtool.values.hashing import hash_checkpoint

    checkpoint = _values_checkpoint(
        source, revision=revision, token=token, subfolder=subfolder, download=download
    )
    total = checkpoint.file_bytes  # each file is read once, for its hash and its tensors'
    return hash_checkpoint(checkpoint, workers=workers, progress=_bytes_progress(progress, total))


def verify(
    path: str | os.PathLike[str],
    against: str,
    *,
    subfolder: str | None = None,
    token: str | None = None,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Compare local files with the hashes the Hub records for ``against`` (``org/name[@rev]``).

    Nothing is downloaded; ``.ok`` is false when a file differs or is missing.
    """
    from paramtool.sources.hub_source import parse_hub_source
    from paramtool.values.verify import hub_file_hashes, plan_verify, run_verify

    if not against:
        raise UsageError(
            "", "name the Hub repo to compare with (org/name[@revision])", param="against"
        )
    parsed = parse_hub_source(against)
    if parsed is None:
        raise UsageError(against, "not a Hub repo id (org/name or org/name@rev)", param="against")
    hub = hub_file_hashes(parsed.repo_id, parsed.revision, token)
    plan = plan_verify(os.fspath(path), hub, subfolder or "")
    advance = _bytes_progress(progress, plan.total_bytes)
    return run_verify(plan, progress=advance) if advance else run_verify(plan)


def diff(
    a: Source,
    b: Source,
    *,
    filter: str | None = None,
    download: bool = False,
    workers: int | None = None,
    token: str | None = None,
    progress: ProgressCallback | None = None,
) -> DiffReport:
    """What differs between two checkpoints: structure, then values, tensor by tensor.

    >>> diff("examples/tiny-llama", "examples/tiny-llama").identical
    True
    """
    from paramtool.patterns import compile_filter
    from paramtool.values.diff import diff_checkpoints
    from paramtool.values.reader import select

    pattern = compile_filter(filter)
    kw: dict[str, Any] = {"revision": None, "token": token, "subfolder": None}
    ca = _values_checkpoint(a, download=download, **kw)
    cb = _values_checkpoint(b, download=download, **kw)
    names_b = {t.name: t for _, t in select(cb, pattern)}
    total = sum(
        t.nbytes + names_b[t.name].nbytes
        for _, t in select(ca, pattern)
        if t.name in names_b and names_b[t.name].shape == t.shape
    )
    return diff_checkpoints(
        ca, cb, pattern=pattern, workers=workers, progress=_bytes_progress(progress, total)
    )


def convert(
    source: Source,
    out: str | os.PathLike[str],
    *,
    max_shard_size: int | str = "5GB",
    force: bool = False,
    prefix: str | None = None,
    progress: ProgressCallback | None = None,
) -> ConvertReport:
    """Write a plain-state-dict PyTorch pickle as safetensors into the folder ``out``.

    Nothing in the pickle is executed; an unsafe one is refused before anything is
    written. Sharded above ``max_shard_size`` (``"5GB"`` as huggingface_hub, or bytes);
    ``prefix`` keeps only the tensors under ``prefix.`` (``"state_dict"`` of a Lightning
    checkpoint), without it. Every file is re-read and hashed before it is renamed into
    place; existing output is replaced only with ``force=True``.
    """
    from paramtool.units import parse_size
    from paramtool.values.convert import convert_checkpoint

    if isinstance(max_shard_size, bool) or not isinstance(max_shard_size, int | str):
        raise UsageError(
            repr(max_shard_size), "give bytes or a size like 5GB", param="max_shard_size"
        )
    try:
        size = parse_size(max_shard_size) if isinstance(max_shard_size, str) else max_shard_size
    except UsageError as e:
        raise UsageError(repr(max_shard_size), e.why, param="max_shard_size") from None
    advance: list[Callable[[int], None] | None] = [None]

    def on_total(total: int) -> None:
        advance[0] = _bytes_progress(progress, total)

    def step(n: int) -> None:
        if advance[0] is not None:
            advance[0](n)

    return convert_checkpoint(
        _paths(source),
        os.fspath(out),
        max_shard_size=size,
        force=force,
        prefix=prefix,
        progress=step if progress is not None else None,
        on_total=on_total,
    )
