"""What names a Hub repo on the command line: ``org/name[@revision]`` or ``hf://org/name``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_REPO = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+)(?:@(?P<rev>[^\s@]+))?$")
_FILE_SUFFIXES = (".safetensors", ".json", ".gguf", ".bin", ".pt", ".pth", ".ckpt")


@dataclass(frozen=True, slots=True)
class HubSource:
    repo_id: str
    revision: str | None


def parse_hub_source(text: str) -> HubSource | None:
    """``org/name``, ``org/name@rev`` or ``hf://org/name[@rev]``; None if it is not one."""
    t = text[5:] if text.startswith("hf://") else text
    m = _REPO.match(t)
    if not m or ".." in m.group("repo"):
        return None
    return HubSource(m.group("repo"), m.group("rev"))


def is_hub_source(text: str) -> bool:
    """A local path of that name wins unless ``hf://`` forces the Hub.

    So does a missing path whose first folder exists here (``models/llama-8b`` with a
    ``models`` folder is a typo'd local path, not a Hub repo): that reports the missing
    path rather than a Hub lookup.
    """
    if text.startswith("hf://"):
        return True
    if os.path.exists(text) or text.lower().endswith(_FILE_SUFFIXES):
        return False
    if os.path.isdir(text.split("/", 1)[0]):
        return False
    return parse_hub_source(text) is not None
