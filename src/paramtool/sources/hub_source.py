"""What names a Hub repo on the command line: ``org/name[@revision]`` or ``hf://org/name``."""

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
    # The Hub's rule (huggingface_hub.utils.validate_repo_id): at most 96 characters.
    if not m or ".." in m.group("repo") or len(m.group("repo")) > 96:
        return None
    return HubSource(m.group("repo"), m.group("rev"))


def is_local_path(text: str) -> bool:
    """Whether ``text`` names something here, even something unreadable.

    A broken symlink, or a path that cannot be looked at (permission denied), is local:
    its error is the local one, not a Hub lookup of the same name.
    """
    try:
        os.lstat(text)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError):  # EACCES, ELOOP, ENAMETOOLONG, an embedded NUL...
        return True
    return True


def looks_like_a_path(text: str) -> bool:
    """Written as a path, never a repo id: ``./x``, ``../x``, ``/x``, ``~/x``, ``C:\\x``..."""
    name = text.partition("@")[0]  # a revision may hold slashes: org/name@refs/pr/1
    if name.startswith((".", "/", "~")) or "\\" in name or (os.altsep and os.altsep in name):
        return True
    return name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def is_hub_source(text: str) -> bool:
    """A local path of that name wins unless ``hf://`` forces the Hub.

    So does a missing path whose first folder exists here (``models/llama-8b`` with a
    ``models`` folder is a typo'd local path, not a Hub repo), and anything written as a
    path (:func:`looks_like_a_path`): that reports the local path rather than a Hub lookup.
    """
    if text.startswith("hf://"):
        return True
    if is_local_path(text) or text.lower().endswith(_FILE_SUFFIXES) or looks_like_a_path(text):
        return False
    if is_local_path(text.split("/", 1)[0]):
        return False
    return parse_hub_source(text) is not None
