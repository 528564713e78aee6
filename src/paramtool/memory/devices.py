"""``--gpu`` values to :class:`~paramtool.memory.engines.base.Device` records.

A spec is ``NAME[:N]``: a known GPU or alias (``h100-80gb``, ``4090``), Apple silicon at
its memory size (``m3-max-128gb``: unified memory, the macOS working-set limit), or a
custom size (``48GB`` decimal, ``24GiB`` binary, as :func:`paramtool.units.parse_size`
reads them). ``:N`` repeats the device N times; repeated ``--gpu`` flags give a mixed
set (``--gpu 4090 --gpu 3090``). One record per physical device, in the order given.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence

from paramtool.errors import UsageError
from paramtool.memory.engines.base import Device
from paramtool.memory.gpus import GIB, Gpu, find_gpu, known_names
from paramtool.units import parse_size

MAX_DEVICES = 4096  # the largest count one spec may ask for


def device_of(gpu: Gpu) -> Device:
    """A known GPU as the fit sees it (Apple: the RAM, and the working set as the limit)."""
    return Device(
        name=gpu.name,
        total_bytes=gpu.marketed_bytes if gpu.unified else gpu.usable_bytes,
        bandwidth_bytes_per_s=gpu.bandwidth_bytes_per_s,
        flops=dict(gpu.flops),
        unified=gpu.unified,
        working_set_bytes=gpu.working_set_bytes,
        key=gpu.key,
        source=gpu.usable_source,
    )


def custom_device(size_bytes: int, spec: str) -> Device:
    """A device of ``size_bytes`` and nothing else known (no bandwidth, no FLOP/s)."""
    return Device(
        name=f"custom {spec.strip()}",
        total_bytes=size_bytes,
        key=spec.strip(),
        source="the size given",
    )


def parse_gpus(specs: Sequence[str]) -> tuple[Device, ...]:
    """Every ``--gpu`` value given, in order, one record per physical device."""
    if not specs:
        raise UsageError("", "give at least one GPU (h100-80gb, 4090:2, 48GB)", param="gpu")
    out: list[Device] = []
    for spec in specs:
        out.extend(parse_gpu(spec))
    return tuple(out)


def parse_gpu(spec: str) -> tuple[Device, ...]:
    """One ``--gpu`` value: ``NAME``, ``NAME:N``, ``48GB``, ``24GiB:2``, ``m3-max-128gb``."""
    text = (spec or "").strip()
    name, count = _split_count(text)
    if not name:
        raise UsageError(repr(spec), "no GPU named (write h100-80gb, 4090:2 or 48GB)", param="gpu")
    gpu = find_gpu(name)
    if gpu is not None:
        return (device_of(gpu),) * count
    if name[:1].isdigit() and not name.replace("_", "").isdigit():
        size = _size(name, spec)
        return (custom_device(size, name),) * count
    raise UsageError(repr(spec), _unknown_why(name), param="gpu")


def _split_count(text: str) -> tuple[str, int]:
    if ":" not in text:
        return text, 1
    name, _, n = text.rpartition(":")
    n = n.strip()
    if not n.isdigit():
        raise UsageError(
            repr(text), "the count after ':' must be a whole number (h100-80gb:4)", param="gpu"
        )
    count = int(n)
    if count < 1:
        raise UsageError(repr(text), "the count after ':' must be at least 1", param="gpu")
    if count > MAX_DEVICES:
        raise UsageError(repr(text), f"at most {MAX_DEVICES} devices per --gpu", param="gpu")
    return name.strip(), count


def _size(name: str, spec: str) -> int:
    try:
        size = parse_size(name)
    except UsageError as e:
        raise UsageError(repr(spec), f"not a size: {e.reason()}", param="gpu") from None
    if size < GIB // 4:
        raise UsageError(
            repr(spec), "a custom GPU size must be at least 256 MiB (48GB, 24GiB)", param="gpu"
        )
    return size


def _unknown_why(name: str) -> str:
    from paramtool.memory.gpus import normalize

    key = normalize(name)
    close = difflib.get_close_matches(key, known_names(), n=4, cutoff=0.6)
    if key.startswith("m") and key[1:2].isdigit() and "gb" not in key:
        return (
            "Apple silicon needs its memory size: m3-max-128gb, m4-pro-48gb "
            "(`paramtool footprint --list-gpus` lists them)"
        )
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return (
        f"unknown GPU; {hint}`paramtool footprint --list-gpus` lists the known ones, "
        "or give a size (48GB, 24GiB)"
    )


def system_ram() -> int | None:
    """This machine's physical memory in bytes, where the OS tells it (POSIX ``sysconf``)."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    if pages <= 0 or page <= 0:
        return None
    return int(pages) * int(page)
