"""Rich tables for ``paramtool inspect``: summary, anatomy, memory, tensors, layers."""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from paramtool.anatomy import CATEGORIES
from paramtool.breakdown import Breakdown
from paramtool.render.bars import bar
from paramtool.render.inspect_json import memory_rows, tensor_rows
from paramtool.units import human_bytes, human_count

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain(text: object) -> Text:
    """Hostile text (tensor names, metadata) as plain Text: never markup, no control chars."""
    return Text(_CONTROL.sub("?", str(text)))


def _count(n: int) -> str:
    return f"{n:,} ({human_count(n)})" if n >= 1000 else f"{n:,}"


def _bytes(n: int, binary: bool) -> str:
    return f"{n:,} ({human_bytes(n, binary)})"


def summary_table(b: Breakdown, binary: bool = False) -> Table:
    ck = b.checkpoint
    t = Table(title="Checkpoint", show_header=False, title_justify="left", box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    t.add_row("Source", plain(ck.source))
    if ck.hub is not None:
        h = ck.hub
        t.add_row("Revision", plain(h.revision))
        t.add_row("License", plain(h.license or "unknown"))
        t.add_row("Gated", plain({False: "no", True: "yes"}.get(h.gated, h.gated)))  # type: ignore[call-overload]
    t.add_row("Parameters", _count(b.total.parameters))
    if ck.hub is not None and ck.hub.stated_parameters is not None:
        stated = ck.hub.stated_parameters
        verdict = "agrees" if stated == b.total.parameters else "DISAGREES"
        t.add_row("Hub states", f"{stated:,} ({verdict})")
    indexed = ck.index_metadata.get("total_parameters")
    if type(indexed) is int:
        verdict = "agrees" if indexed == b.total.parameters else "DISAGREES"
        t.add_row("Index states", f"{indexed:,} ({verdict})")
    t.add_row("Tensor bytes", _bytes(b.total.bytes, binary))
    total = b.total.parameters or 1
    mix = ", ".join(f"{d} {v.parameters / total:.1%}" for d, v in b.by_dtype.items()) or "-"
    t.add_row("Dtypes", mix)
    t.add_row("Files", f"{len(ck.files)} ({human_bytes(ck.file_bytes, binary)} on disk)")
    t.add_row("Tensors", f"{b.total.tensors:,}")
    t.add_row("Layers", str(b.layer_count))
    cfg = b.config
    if cfg is not None:
        arch = cfg.architecture or cfg.model_type or "unknown"
        t.add_row("Architecture", plain(arch))
        shape = [f"{cfg.layers} layers" if cfg.layers else "", f"hidden {cfg.hidden_size}" if cfg.hidden_size else "",
                 f"{cfg.heads} heads" if cfg.heads else "", f"{cfg.kv_heads} KV heads" if cfg.kv_heads else ""]
        if any(shape):
            t.add_row("Config", ", ".join(s for s in shape if s))
    if b.tied_embeddings is not None:
        t.add_row("Embeddings", ("tied" if b.tied_embeddings else "not tied") + f" ({b.tied_source})")
    return t


def anatomy_table(b: Breakdown, binary: bool = False) -> Table:
    t = Table(title="Anatomy", title_justify="left")
    t.add_column("category", no_wrap=True, min_width=12)
    t.add_column("parameters", justify="right", no_wrap=True)
    t.add_column("share", justify="right")
    t.add_column("", no_wrap=True, width=16)
    t.add_column("bytes", justify="right")
    t.add_column("tensors", justify="right")
    for c in CATEGORIES:
        v = b.by_category[c]
        if v.tensors == 0 and c not in ("other",):
            continue
        share = b.share(c)
        t.add_row(c, f"{v.parameters:,}", f"{share:.1%}", bar(share, 16), human_bytes(v.bytes, binary), f"{v.tensors:,}")
    t.add_section()
    t.add_row("total", f"{b.total.parameters:,}", "100.0%", "", human_bytes(b.total.bytes, binary),
              f"{b.total.tensors:,}", style="bold")
    return t


def memory_table(b: Breakdown, binary: bool = False) -> Table:
    t = Table(title="Memory for these parameters", title_justify="left")
    t.add_column("precision")
    t.add_column("bits", justify="right")
    t.add_column("bytes", justify="right")
    t.add_column("size", justify="right")
    for row in memory_rows(b.total.parameters):
        t.add_row(row["dtype"], f"{row['bits']:g}", f"{row['bytes']:,}", human_bytes(row["bytes"], binary))
    return t


def tensors_table(b: Breakdown, pattern: re.Pattern[str] | None, binary: bool = False) -> Table:
    rows = tensor_rows(b, pattern)
    t = Table(title=f"Tensors ({len(rows):,} shown)", title_justify="left")
    t.add_column("name", overflow="fold")
    for name, just in ( ("dtype", "left"), ("shape", "left"), ("parameters", "right"),
                       ("bytes", "right"), ("category", "left"), ("layer", "right")):
        t.add_column(name, justify=just)  # type: ignore[arg-type]
    for r in rows:
        t.add_row(plain(r["name"]), r["dtype"], "×".join(map(str, r["shape"])) or "scalar",
                  f"{r['parameters']:,}", human_bytes(r["bytes"], binary), r["category"],
                  "" if r["layer"] is None else str(r["layer"]))
    return t


SHORT = {"embedding": "emb", "attention": "attn", "feed_forward": "ffn", "norm": "norm",
         "adapter": "adapter", "quantization": "quant", "other": "other"}
COLOURS = {"embedding": "white", "attention": "blue", "feed_forward": "green", "norm": "yellow",
           "adapter": "magenta", "quantization": "cyan", "other": "red"}


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


def layers_table(b: Breakdown, binary: bool = False, width: int = 30) -> Table:
    t = Table(title="Parameters per layer", title_justify="left",
              caption="  ".join(f"[{COLOURS[c]}]█[/] {SHORT[c]}" for c in CATEGORIES), caption_justify="left")
    t.add_column("layer", justify="right")
    t.add_column("params", justify="right", no_wrap=True)
    t.add_column("", no_wrap=True, min_width=width)
    t.add_column("mix", no_wrap=True)
    peak = max((lt.total.parameters for lt in b.by_layer), default=0) or 1
    for lt in b.by_layer:
        parts = sorted(((c, v.parameters) for c, v in lt.by_category.items() if v.parameters),
                       key=lambda kv: CATEGORIES.index(kv[0]))
        mix = " ".join(f"{SHORT[c]} {n / (lt.total.parameters or 1):.0%}" for c, n in parts)
        t.add_row(str(lt.layer), human_count(lt.total.parameters), stacked_bar(parts, peak, width), mix)
    return t


def report(b: Breakdown, *, tensors: bool = False, pattern: re.Pattern[str] | None = None,
           layers: bool = False, binary: bool = False) -> Group:
    parts: list[Any] = [summary_table(b, binary), anatomy_table(b, binary), memory_table(b, binary)]
    if layers:
        parts.append(layers_table(b, binary))
    if tensors:
        parts.append(tensors_table(b, pattern, binary))
    return Group(*parts)


def print_report(console: Console, b: Breakdown, **kw: Any) -> None:
    console.print(report(b, **kw))
