"""Put tests/ on sys.path so test modules can import the shared helpers, and load the Hub fixture.

The helpers are plain functions; test modules import them, never each other:

- ``helpers``: ``cli`` (the one in-process CLI runner), ``cli_json``, ``strict_json`` and
  ``error_line`` (the one ``paramtool: error:`` line of a failed run);
- ``layouts``: ``make_checkpoint`` (small real files, ``shards=`` for a sharded folder),
  ``tiny_model``, and header-exact sparse layouts of real models
  (``write_sparse_checkpoint``); ``quant_layouts``: quantized layouts and GGUF files;
- ``hub_emulator`` and ``hub_fixtures``: the Hub on 127.0.0.1 and its ``hub`` fixture.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest_plugins = ["hub_fixtures"]
