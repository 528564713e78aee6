"""The ``hub`` pytest fixture: a running ``HubEmulator`` wired into huggingface_hub.

Use it from a test module with ``pytest_plugins = ["hub_fixtures"]`` (or from the root
``conftest.py``), then ask for ``hub``::

    def test_remote_header(hub):
        sha = hub.add_repo("org/tiny", {"model.safetensors": path_to_file})
        meta = HfApi().get_safetensors_metadata("org/tiny")       # talks to the emulator
        assert hub.requests[-1].range == "bytes=0-100000"

What the fixture sets up, for one test:

- Environment (inherited by subprocesses): ``HF_ENDPOINT`` = the emulator, ``HF_HOME`` and
  ``HF_HUB_CACHE`` = fresh temporary folders, ``HF_HUB_DISABLE_TELEMETRY=1``,
  ``HF_HUB_DISABLE_PROGRESS_BARS=1``, ``HF_HUB_DISABLE_UPDATE_CHECK=1``; ``HF_TOKEN``, the
  legacy token variables, ``HF_HUB_OFFLINE`` and other overrides are removed.
- In this process: huggingface_hub reads those variables once, at import, into
  ``huggingface_hub.constants``; the fixture sets the same values there (``ENDPOINT``, the
  resolve-URL template, cache and token paths, offline flag) and points the module-level
  ``HfApi`` behind ``huggingface_hub.model_info`` & co. at the emulator. ``HfApi()``,
  ``hf_hub_url``, ``hf_hub_download`` and ``get_session()`` then reach the emulator with no
  ``endpoint=`` argument. An ``HfApi`` made before the fixture ran (e.g. at import time of the
  code under test) keeps its old endpoint: create clients when needed, not at import.

Running the CLI: ``subprocess.run([sys.executable, "-m", "paramtool", ...])`` inherits the
environment above, so the child imports huggingface_hub already pointed at the emulator and
caching into the test's ``HF_HUB_CACHE`` (``Path(os.environ["HF_HUB_CACHE"])``). Add
``env={**os.environ, "HF_HUB_OFFLINE": "1"}`` to check the cache-only path, or
``"HF_TOKEN": token`` with ``hub.valid_tokens.add(token)`` for gated repos. In-process
``typer.testing.CliRunner`` runs work too, thanks to the constants above.

``hub.latency`` may be set within the test (seconds per request); ``hub.reset_counters()``
clears ``hub.requests`` between the set-up and the part of the test that is measured.
``hub.add_fault(path_pattern, kind, ...)`` makes matching requests stall, drip, fail with a
status (``429`` with ``Retry-After``...), answer a wrong body or a huge lazy one, and
``hub.move_branch(repo, "main", sha, after=1)`` moves a branch between two requests of one run
(see ``hub_emulator.py``). Set ``PARAMTOOL_HUB_TIMEOUT`` (seconds) low in tests that wait on a
deadline.

``pytest --hub-only`` runs only the tests that ask for ``hub`` (``.ci/min-versions`` runs
them at the dependency floors).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants, hf_api, utils

from hub_emulator import HubEmulator

__all__ = ["hub", "hub_tls", "set_constant"]
_MISSING = object()

_CLEARED = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_OIDC_RESOURCE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HUGGINGFACE_HUB_CACHE",
    "HUGGINGFACE_CO_STAGING",
    "HF_HUB_ETAG_TIMEOUT",
    "HF_HUB_DOWNLOAD_TIMEOUT",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    "HF_HUB_ENABLE_HF_TRANSFER",
    "HF_XET_CACHE",
    "HF_ASSETS_CACHE",
)


@pytest.fixture
def hub(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HubEmulator]:
    """A started emulator that huggingface_hub (here and in subprocesses) talks to."""
    emulator = HubEmulator(tmp_path_factory.mktemp("hub-repos"))
    yield from _wired(emulator, emulator.start(), tmp_path_factory, monkeypatch)


@pytest.fixture
def hub_tls(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HubEmulator]:
    """The same over HTTPS, its certificate signed by a CA made for the test;
    ``hub_tls.ca_file`` is that CA (PEM). No CA variable is set: each test says which."""
    folder = tmp_path_factory.mktemp("tls")
    server_ctx, ca_file = _test_ca(folder)
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    emulator = HubEmulator(tmp_path_factory.mktemp("hub-repos"))
    emulator.ca_file = ca_file  # type: ignore[attr-defined]
    yield from _wired(emulator, emulator.start(tls=server_ctx), tmp_path_factory, monkeypatch)


def _test_ca(folder: Path) -> tuple[Any, Path]:
    """A CA, and a server certificate it signs for 127.0.0.1, 127.0.0.2 and localhost."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paramtool test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost")] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "127.0.0.2")
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = folder / "server.pem"
    chain.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain)
    return ctx, ca_file


def _wired(
    emulator: HubEmulator,
    url: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[HubEmulator]:
    """huggingface_hub (here and in subprocesses) pointed at ``emulator`` serving ``url``."""
    home = tmp_path_factory.mktemp("hf-home")
    cache = home / "hub"

    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "HF_ENDPOINT": url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }.items():
        monkeypatch.setenv(name, value)

    for name, value in {
        "ENDPOINT": url,
        "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HUGGINGFACE_HUB_CACHE": str(cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": False,
        "HF_HUB_ETAG_TIMEOUT": constants.DEFAULT_ETAG_TIMEOUT,
        "HF_HUB_DOWNLOAD_TIMEOUT": constants.DEFAULT_DOWNLOAD_TIMEOUT,
    }.items():
        set_constant(monkeypatch, name, value)
    # The module-level functions (huggingface_hub.model_info, ...) are bound to one HfApi
    # made at import time.
    monkeypatch.setattr(hf_api.api, "endpoint", url)

    try:
        yield emulator
    finally:
        emulator.stop()
        _drop_sessions()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hub-only", action="store_true", help="run only the tests that use a hub fixture"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--hub-only"):
        return
    names = ("hub", "hub_tls")
    uses = [(any(n in getattr(i, "fixturenames", ()) for n in names), i) for i in items]
    config.hook.pytest_deselected(items=[i for hub, i in uses if not hub])
    items[:] = [i for hub, i in uses if hub]


def set_constant(monkeypatch: pytest.MonkeyPatch, name: str, value: Any) -> None:
    """Set ``huggingface_hub.constants.<name>``, and the copies other modules took at import.

    The 0.x line's ``file_download`` keeps its own ``HUGGINGFACE_CO_URL_TEMPLATE``.
    """
    old = getattr(constants, name, _MISSING)
    monkeypatch.setattr(constants, name, value, raising=False)
    if old is _MISSING:
        return
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("huggingface_hub.") and module is not constants:
            if getattr(module, name, _MISSING) is old:
                monkeypatch.setattr(module, name, value)


def _drop_sessions() -> None:
    """Drop pooled keep-alive connections to the stopped server (``reset_sessions`` in 0.x)."""
    close = getattr(utils, "close_session", None) or utils.reset_sessions
    close()


def hub_cache() -> Path:
    """The huggingface_hub cache folder the ``hub`` fixture set up for the running test."""
    return Path(os.environ["HF_HUB_CACHE"])
