"""Rich tables for ``paramtool inspect``: summary, anatomy, memory, tensors, layers."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat, starmap
from operator import attrgetter
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from paramtool.analysis.anatomy import CATEGORIES
from paramtool.analysis.breakdown import Breakdown, bits_per_weight
from paramtool.analysis.inspection import memory_rows, tensor_rows
from paramtool.patterns import NamePattern
from paramtool.records import FileHeader
from paramtool.render.bars import bar
from paramtool.render.fit import FitTable
from paramtool.safe_text import printable
from paramtool.units import human_bytes, human_count

_NAME, _DTYPE, _SHAPE, _STORED_BYTES, _LAYER, _CATEGORY = map(
    attrgetter, ("name", "dtype", "shape", "stored_bytes", "layer", "category")
)


def plain(text: object) -> Text:
    """Hostile text (tensor names, metadata) as plain Text: never markup, no control chars."""
    return Text(printable(text))


def _count(n: int) -> str:
    return f"{n:,} ({human_count(n)})" if n >= 1000 else f"{n:,}"


def _bytes(n: int, binary: bool) -> str:
    return f"{n:,} ({human_bytes(n, binary)})"


def summary_table(b: Breakdown, binary: bool = False) -> Table:
    ck = b.checkpoint
    t = Table(title="Checkpoint", show_header=False, title_justify="left", box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(overflow="fold")  # a long word (a path) folds, never ends in …
    t.add_row("Source", plain(ck.source))
    if ck.gguf is not None:
        g = ck.gguf
        kinds = {"mmproj": "vision projector (mmproj)", "adapter": "LoRA adapter"}
        kind = kinds.get(str(g.get("kind")))
        parts = [
            f"GGUF v{g.get('version')}",
            f"file type {g.get('file_type')}" if g.get("file_type") else "",
        ]
        if g.get("split_count", 1) and g.get("split_count", 1) > 1:
            parts.append(f"split in {g['split_count']} parts")
        t.add_row("Format", plain(", ".join(p for p in parts if p)))
        if kind:
            t.add_row("Kind", kind)
        if g.get("context_length"):
            t.add_row("Context", f"{g['context_length']:,} tokens")
    if ck.hub is not None:
        h = ck.hub
        t.add_row("Revision", plain(h.revision))
        t.add_row("License", plain(h.license or "unknown"))
        gated = ("yes" if h.gated else "no") if isinstance(h.gated, bool) else h.gated
        t.add_row("Gated", plain(gated))
    quantized = b.stored_elements != b.logical_parameters
    t.add_row("Parameters", _count(b.logical_parameters) + (" logical" if quantized else ""))
    if quantized:
        how = "shared storages once" if ck.format == "pickle" else "packed, scales included"
        t.add_row("Stored elements", _count(b.stored_elements) + f", as stored: {how}")
    if ck.hub is not None and ck.hub.stated_parameters is not None:
        stated = ck.hub.stated_parameters  # the Hub adds up stored elements
        verdict = "agrees" if stated == b.stored_elements else "DISAGREES"
        if quantized and stated == b.stored_elements:
            verdict = "agrees: it counts stored elements"
        t.add_row("Hub states", f"{stated:,} ({verdict})")
    indexed = b.index_parameters
    if indexed is not None:
        verdict = {"logical": "agrees", "stored": "agrees with the stored elements"}.get(
            b.index_agrees_with or "", "DISAGREES"
        )
        t.add_row("Index states", f"{indexed:,} ({verdict})")
    t.add_row("Tensor bytes", _bytes(b.total.bytes, binary))
    if ck.gguf is not None or b.quantization is not None:
        t.add_row("Bits/weight", f"{bits_per_weight(b).overall} effective (bytes × 8 / parameters)")
    total = b.total.parameters or 1
    mix = ", ".join(f"{d} {v.parameters / total:.1%}" for d, v in b.by_dtype.items()) or "-"
    t.add_row("Dtypes", mix)
    t.add_row("Files", f"{len(ck.files)} ({human_bytes(ck.file_bytes, binary)} on disk)")
    for label, text in pickle_rows(ck.files):
        t.add_row(label, plain(text))
    t.add_row("Tensors", f"{b.total.tensors:,}")
    t.add_row("Layers", str(b.layer_count))
    cfg = b.config
    if cfg is not None:
        arch = cfg.architecture or cfg.model_type or "unknown"
        t.add_row("Architecture", plain(arch))
        shape = [
            f"{cfg.layers} layers" if cfg.layers else "",
            f"hidden {cfg.hidden_size}" if cfg.hidden_size else "",
            f"{cfg.heads} heads" if cfg.heads else "",
            f"{cfg.kv_heads} KV heads" if cfg.kv_heads else "",
        ]
        if any(shape):
            t.add_row("Config", ", ".join(s for s in shape if s))
    if b.tied_embeddings is not None:
        t.add_row(
            "Embeddings", ("tied" if b.tied_embeddings else "not tied") + f" ({b.tied_source})"
        )
    return t


def pickle_rows(files: Sequence[FileHeader], shown: int = 8) -> list[tuple[str, str]]:
    """The safety verdict of pickled files (every unsafe global named, with its byte
    offset), the wrapping prefix taken off, and the entries that are not model tensors."""
    pickled = [f for f in files if f.pickle is not None]
    if not pickled:
        return []
    rows: list[tuple[str, str]] = []
    containers = sorted({f.pickle.container for f in pickled if f.pickle is not None})
    unsafe = [f for f in pickled if f.pickle is not None and f.pickle.unsafe]
    if not unsafe:
        where = "" if len(pickled) == 1 else f", all {len(pickled)} files"
        rows.append(("Pickle", f"plain state dict ({', '.join(containers)}{where})"))
    for f in unsafe:
        assert f.pickle is not None
        names = [f"{g.qualname} at byte {g.offset:,}" for g in f.pickle.unsafe_globals]
        more = f", and {len(names) - shown:,} more" if len(names) > shown else ""
        label = "UNSAFE" if len(pickled) == 1 else f"UNSAFE {f.path}"
        rows.append(("Pickle", f"{label}: {', '.join(names[:shown])}{more} (never resolved)"))
    prefixes = sorted(
        {f.pickle.prefix for f in pickled if f.pickle is not None and f.pickle.prefix}
    )
    if prefixes:
        rows.append(("Names", f"{', '.join(prefixes)} taken off (the model's own names)"))
    kinds: dict[str, int] = {}
    for f in pickled:
        assert f.pickle is not None
        for e in f.pickle.entries:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
    if kinds:
        count = sum(kinds.values())
        mix = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
        rows.append(("Other entries", f"{count:,} ({mix}), not counted as parameters"))
    return rows


def anatomy_table(b: Breakdown, binary: bool = False) -> FitTable:
    """Parameters (logical) by category; quantized checkpoints also show stored elements."""
    stored = b.quantization is not None
    t = FitTable(title="Anatomy", title_justify="left")
    t.add_column("category", min_width=12)
    t.add_column("parameters", justify="right")
    t.add_column("share", justify="right", drop=2)
    t.add_column("", decoration=True, width=16)
    if stored:
        t.add_column("stored elements", justify="right")
    t.add_column("bytes", justify="right", drop=3)
    t.add_column("tensors", justify="right", drop=1)
    for c in CATEGORIES:
        v = b.by_category[c]
        if v.tensors == 0 and c not in ("other",):
            continue
        share = b.share(c)
        extra = [f"{v.elements:,}"] if stored else []
        t.add_row(
            c,
            f"{v.parameters:,}",
            f"{share:.1%}",
            bar(share, 16),
            *extra,
            human_bytes(v.bytes, binary),
            f"{v.tensors:,}",
        )
    t.add_section()
    extra = [f"{b.total.elements:,}"] if stored else []
    t.add_row(
        "total",
        f"{b.total.parameters:,}",
        "100.0%",
        "",
        *extra,
        human_bytes(b.total.bytes, binary),
        f"{b.total.tensors:,}",
        style="bold",
    )
    return t


def parts_table(b: Breakdown, binary: bool = False) -> FitTable | None:
    """Parameters by part (language model, vision encoder, projector, MTP head...) and
    category; shown only when the checkpoint holds more than one part."""
    if len(b.by_part) < 2:
        return None
    t = FitTable(title="Parts", title_justify="left")
    t.add_column("part", min_width=14)
    t.add_column("category", min_width=12)
    t.add_column("parameters", justify="right")
    t.add_column("share", justify="right", drop=2)
    t.add_column("bytes", justify="right", drop=3)
    t.add_column("tensors", justify="right", drop=1)
    total = b.total.parameters or 1
    for part, cats in b.by_part.items():
        first = True
        for c in CATEGORIES:
            v = cats[c]
            if v.tensors == 0:
                continue
            t.add_row(
                part if first else "",
                c,
                f"{v.parameters:,}",
                f"{v.parameters / total:.1%}",
                human_bytes(v.bytes, binary),
                f"{v.tensors:,}",
            )
            first = False
    return t


def _kv(title: str) -> Table:
    t = Table(title=title, show_header=False, title_justify="left", box=None, padding=(0, 2))
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    return t


def quantization_table(b: Breakdown, binary: bool = False) -> Table | None:
    """Scheme, bits, logical vs stored, effective bits per parameter, metadata overhead."""
    q = b.quantization
    if q is None:
        return None
    t = _kv("Quantization")
    scheme = q.scheme + (f" ({q.format})" if q.format and q.format != q.scheme else "")
    t.add_row("Scheme", plain(f"{scheme}, from {q.detected_from}"))
    shape = [
        f"{q.bits}-bit" if q.bits else "",
        f"group size {q.group_size}" if q.group_size else "",
        "blocks " + "x".join(map(str, q.block_size)) if q.block_size else "",
    ]
    if any(shape):
        t.add_row("Bits", ", ".join(x for x in shape if x))
    t.add_row("Logical parameters", _count(q.logical_parameters))
    t.add_row("Stored", f"{q.stored_elements:,} elements in {_bytes(q.stored_bytes, binary)}")
    t.add_row(
        "Bits per parameter",
        f"{q.bits_per_parameter:.3f} effective (stored bytes x 8 / logical parameters)",
    )
    qbits = q.quantized_bits_per_parameter
    if q.quantized_tensors:
        detail = f" at {qbits:.3f} bits with their metadata" if qbits is not None else ""
        t.add_row(
            "Quantized weights",
            f"{q.quantized_tensors:,} tensors, {_count(q.quantized_parameters)} parameters{detail}",
        )
    if len(q.by_scheme) > 1:
        t.add_row("Stored as", ", ".join(f"{k} {v.parameters:,}" for k, v in q.by_scheme.items()))
    t.add_row(
        "Overhead",
        f"{_bytes(q.overhead_bytes, binary)}, {q.overhead_share:.2%} of the "
        f"stored bytes, in {q.overhead_tensors:,} tensors (scales, zero points, indices)",
    )
    for note in q.notes:
        t.add_row("Note", plain(note))
    return t


def adapter_table(b: Breakdown, binary: bool = False) -> Table | None:
    """Method, ranks, alpha, targets, size; share of the base and the merged size when known."""
    a = b.adapter
    if a is None:
        return None
    t = _kv("Adapter")
    method = (
        a.method
        + (f" (peft_type {a.peft_type})" if a.peft_type and a.peft_type != a.method else "")
        + (", rsLoRA" if a.use_rslora else "")
    )
    t.add_row("Method", plain(method))
    if a.ranks:
        if len(a.ranks) == 1:
            t.add_row("Rank", str(a.rank))
        else:
            t.add_row("Ranks", ", ".join(f"{r} ({n:,} modules)" for r, n in a.ranks.items()))
    elif a.rank is not None:
        t.add_row("Rank", str(a.rank))
    if a.alpha is not None:
        t.add_row("Alpha", f"{a.alpha:g}")
    if a.targets:
        parts = []
        for x in a.targets:
            r = "/".join(map(str, x.ranks))
            parts.append(f"{x.name} x{x.modules:,}" + (f" (r {r})" if len(a.ranks) > 1 else ""))
        t.add_row("Targets", plain(", ".join(parts)))
    if a.modules_to_save:
        t.add_row("Modules to save", plain(", ".join(a.modules_to_save)))
    t.add_row("Parameters", _count(a.parameters))
    t.add_row("Bytes", _bytes(a.bytes, binary) + (f" {a.dtype}" if a.dtype else ""))
    base = a.base
    if base is None:
        hint = f"{a.base_model}, not read" if a.base_model else "unknown"
        t.add_row("Base", plain(f"{hint} (give --base SOURCE for the share and the merged size)"))
    else:
        t.add_row("Base", plain(f"{base.source}: {base.parameters:,} parameters"))
        share = a.share_of_base
        if share is not None:
            t.add_row("Share of base", f"{share:.4%}")
        if a.merged_parameters is not None and a.merged_bytes is not None:
            dtype = " at 16-bit" if base.quantized else (f" {base.dtype}" if base.dtype else "")
            t.add_row(
                "Merged model",
                f"{_count(a.merged_parameters)} parameters, "
                f"{_bytes(a.merged_bytes, binary)}{dtype}",
            )
    for note in a.notes:
        t.add_row("Note", plain(note))
    return t


def moe_table(b: Breakdown, binary: bool = False) -> Table | None:
    """Experts per layer (routed and shared), experts per token, total vs active parameters."""
    m = b.moe
    if m is None:
        return None
    t = _kv("Mixture of experts")
    routed = f"{m.routed_experts} routed" if m.routed_experts else "routed (count unknown)"
    shared = f" + {m.shared_experts} shared" if m.shared_experts else ""
    t.add_row("Experts", f"{routed}{shared} per layer, {m.moe_layers} MoE layers ({m.layout})")
    if m.experts_per_token is not None:
        t.add_row(
            "Per token",
            f"{m.experts_per_token} routed experts"
            + (f" + {m.shared_experts} shared" if m.shared_experts else ""),
        )
    t.add_row("Total parameters", _count(m.total_parameters))
    if m.active_parameters is not None:
        share = m.active_share or 0.0
        exact = "" if m.active_exact else ", rounded"
        if m.input_embedding_parameters and b.tied_embeddings is not True:
            lookup = m.active_parameters - m.input_embedding_parameters
            exact += f"; {human_count(lookup)} without the input embedding lookup"
        t.add_row(
            "Active per token", f"{_count(m.active_parameters)}, {share:.1%} of the total{exact}"
        )
    t.add_row("Routed experts", _count(m.routed_parameters))
    if m.shared_parameters:
        t.add_row("Shared experts", _count(m.shared_parameters))
    t.add_row("Router", _count(m.router_parameters))
    if m.mtp_parameters:
        layers = f"layer {', '.join(map(str, m.mtp_layers))}: " if m.mtp_layers else ""
        active = (
            ""
            if m.mtp_active_parameters is None
            else (f", {_count(m.mtp_active_parameters)} active")
        )
        t.add_row(
            "MTP module",
            f"{layers}{_count(m.mtp_parameters)} parameters{active} (included above)",
        )
    for note in m.notes:
        t.add_row("Note", plain(note))
    return t


def remote_code_table(b: Breakdown, binary: bool = False) -> Table | None:
    """The custom code the config declares (auto_map, custom_pipelines) and the .py files there."""
    rc = b.remote_code
    if rc is None:
        return None
    t = _kv("Custom code")
    for r in rc.declared:
        t.add_row("Declares", plain(f"{r.declared_in} {r.key} → {r.reference}"))
    if rc.modules:
        t.add_row("Would import", plain(", ".join(rc.modules)))
    if rc.missing:
        t.add_row("Missing", plain(", ".join(rc.missing) + " (not in the checkpoint's folder)"))
    if rc.other_repos:
        t.add_row("From other repos", plain(", ".join(rc.other_repos)))
    if rc.code_files:
        t.add_row("Python files", plain(", ".join(rc.code_files)))
    for note in rc.notes:
        t.add_row("Note", plain(note))
    if rc.declared:
        t.add_row(
            "Warning",
            "a trust_remote_code load would import and run this code; paramtool never does",
        )
    else:
        t.add_row("Declares", "nothing: no auto_map or custom_pipelines in config.json")
    return t


def memory_table(b: Breakdown, binary: bool = False) -> FitTable:
    t = FitTable(title="Memory for these parameters", title_justify="left")
    t.add_column("precision")
    t.add_column("bits", justify="right")
    t.add_column("bytes", justify="right")
    t.add_column("size", justify="right")
    for row in memory_rows(b.total.parameters):
        t.add_row(
            row["dtype"], f"{row['bits']:g}", f"{row['bytes']:,}", human_bytes(row["bytes"], binary)
        )
    return t


def tensors_table(b: Breakdown, pattern: NamePattern | None, binary: bool = False) -> FitTable:
    """One row per tensor; when narrow the layer and category (both in the name) go
    first, then the bytes, then each name moves to a line of its own."""
    rows = tensor_rows(b, pattern)
    t = FitTable(title=f"Tensors ({len(rows):,} shown)", title_justify="left")
    t.add_column("name", name=True)
    t.add_column("dtype")
    t.add_column("shape")
    t.add_column("parameters", justify="right")
    t.add_column("bytes", justify="right", drop=3)
    t.add_column("category", drop=2)
    t.add_column("layer", justify="right", drop=1)
    for r in rows:
        t.add_row(
            plain(r["name"]),
            r["dtype"],
            "×".join(map(str, r["shape"])) or "scalar",
            f"{r['parameters']:,}",
            human_bytes(r["bytes"], binary),
            r["category"],
            "" if r["layer"] is None else str(r["layer"]),
        )
    return t


SHORT = {
    "embedding": "emb",
    "attention": "attn",
    "feed_forward": "ffn",
    "norm": "norm",
    "adapter": "adapter",
    "quantization": "quant",
    "other": "other",
}
COLOURS = {
    "embedding": "white",
    "attention": "blue",
    "feed_forward": "green",
    "norm": "yellow",
    "adapter": "magenta",
    "quantization": "cyan",
    "other": "red",
}


def stacked_bar(parts: list[tuple[str, int]], scale: int, width: int) -> Text:
    """One bar per layer, a coloured run per category, ``scale`` parameters filling ``width``."""
    text = Text()
    used = 0
    for category, n in parts:
        cells = round(n / scale * width) if scale else 0
        cells = min(cells, width - used)
        if cells:
            text.append("█" * cells, style=COLOURS.get(category, ""))
            used += cells
    return text


def layers_table(b: Breakdown, binary: bool = False, width: int = 30) -> FitTable:
    t = FitTable(
        title="Parameters per layer",
        title_justify="left",
        caption="  ".join(f"[{COLOURS[c]}]█[/] {SHORT[c]}" for c in CATEGORIES),
        caption_justify="left",
    )
    t.add_column("layer", justify="right")
    t.add_column("params", justify="right")
    t.add_column("", decoration=True, min_width=width)
    t.add_column("mix", wrap=True)
    peak = max((lt.total.parameters for lt in b.by_layer), default=0) or 1
    for lt in b.by_layer:
        parts = sorted(
            ((c, v.parameters) for c, v in lt.by_category.items() if v.parameters),
            key=lambda kv: CATEGORIES.index(kv[0]),
        )
        mix = " ".join(f"{SHORT[c]} {n / (lt.total.parameters or 1):.0%}" for c, n in parts)
        t.add_row(
            str(lt.layer), human_count(lt.total.parameters), stacked_bar(parts, peak, width), mix
        )
    return t


def report(
    b: Breakdown,
    *,
    tensors: bool = False,
    pattern: NamePattern | None = None,
    layers: bool = False,
    binary: bool = False,
) -> Group:
    parts: list[Any] = [summary_table(b, binary), anatomy_table(b, binary)]
    for section in (parts_table, quantization_table, adapter_table, moe_table, remote_code_table):
        table = section(b, binary)
        if table is not None:
            parts.append(table)
    parts.append(memory_table(b, binary))
    if layers:
        parts.append(layers_table(b, binary))
    if tensors:
        parts.append(tensors_table(b, pattern, binary))
    return Group(*parts)


TABLE_ROWS = 2_000
"""Past this many tensors, ``--tensors`` is a plain listing streamed line by line: a Rich
table lays out every cell before printing the first (about 0.5 ms a row)."""


def print_report(
    console: Console,
    b: Breakdown,
    *,
    tensors: bool = False,
    pattern: NamePattern | None = None,
    binary: bool = False,
    **kw: Any,
) -> None:
    shown = (
        sum(1 for t in b.checkpoint.tensors if pattern is None or pattern.search(t.name))
        if tensors
        else 0
    )
    if shown <= TABLE_ROWS:
        console.print(report(b, tensors=tensors, pattern=pattern, binary=binary, **kw))
        return
    console.print(report(b, binary=binary, **kw))
    console.print(Text(f"Tensors ({shown:,} shown)", style="italic"))
    for chunk in tensor_listing(b, pattern, binary):
        if console.record:  # --export: through the console, which keeps what it prints
            console.out(chunk, end="", highlight=False)
        else:
            console.file.write(chunk)


def tensor_listing(
    b: Breakdown, pattern: NamePattern | None = None, binary: bool = False
) -> list[str]:
    """The ``--tensors`` rows (those of :func:`tensors_table`) as aligned plain text, in
    chunks of whole lines; names whole, never wrapped or cut."""
    header = ("name", "dtype", "shape", "parameters", "bytes", "category", "layer")
    tensors: Sequence[Any] = b.checkpoint.tensors
    roles: Sequence[Any] = b.roles
    counts: Sequence[int] = b.parameters
    names = list(map(_NAME, tensors))
    if pattern is not None:  # the rows kept
        keep = [i for i, name in enumerate(names) if pattern.search(name)]
        tensors = [tensors[i] for i in keep]
        roles = [roles[i] for i in keep]
        counts = [counts[i] for i in keep]
        names = [names[i] for i in keep]
    # Column by column, each distinct size, shape and layer written once.
    if not all(map(str.isascii, names)) or not all(map(str.isprintable, names)):
        names = [n if n.isascii() and n.isprintable() else printable(n) for n in names]
    stored = list(map(_STORED_BYTES, tensors))
    sizes = {size: human_bytes(size, binary) for size in set(stored)}
    shapes = list(map(_SHAPE, tensors))
    dims = {shape: "×".join(map(str, shape)) or "scalar" for shape in set(shapes)}
    layers = list(map(_LAYER, roles))
    layer_text = {layer: "" if layer is None else str(layer) for layer in set(layers)}
    cells = list(
        zip(
            names,
            map(_DTYPE, tensors),
            map(dims.__getitem__, shapes),
            map(format, counts, repeat(",")),
            map(sizes.__getitem__, stored),
            map(_CATEGORY, roles),
            map(layer_text.__getitem__, layers),
            strict=True,
        )
    )
    columns = list(zip(*cells, strict=True)) if cells else [()] * len(header)
    widths = [
        max(len(h), max(map(len, c), default=0)) for h, c in zip(header, columns, strict=True)
    ]
    w0, w1, w2, w3, w4, w5, w6 = widths
    fmt = f"{{:<{w0}}}  {{:<{w1}}}  {{:<{w2}}}  {{:>{w3}}}  {{:>{w4}}}  {{:<{w5}}}  {{:>{w6}}}"
    lines = [fmt.format(*header).rstrip(), "  ".join("-" * w for w in widths)]
    lines.extend(map(str.rstrip, starmap(fmt.format, cells)))
    step = 10_000
    return ["\n".join(lines[i : i + step]) + "\n" for i in range(0, len(lines), step)]
