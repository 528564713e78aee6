"""Put tests/ on sys.path so test modules can import their helpers (layouts, hub_emulator)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest_plugins = ["hub_fixtures"]
