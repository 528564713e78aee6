"""The Hub over HTTPS (the emulator with a certificate from a CA made for the test):
certificates are verified on every transport, the CA variables are honoured, and a server
whose certificate nothing trusts is one error line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest

from helpers import cli, cli_json, error_line
from hub_emulator import HubEmulator
from layouts import tiny_llama, write_sparse_checkpoint


@pytest.fixture
def repo(hub_tls: HubEmulator, tmp_path: Path) -> dict[str, Any]:
    folder = tmp_path / "tiny"
    write_sparse_checkpoint(folder, tiny_llama())
    hub_tls.add_repo("org/tiny", folder)
    return {"folder": folder, "local": cli_json("inspect", str(folder))}


def _same(remote: dict[str, Any], local: dict[str, Any]) -> None:
    assert remote["total_parameters"] == local["total_parameters"]
    assert remote["by_category"] == local["by_category"]
    assert remote["hub"]["repo_id"] == "org/tiny"


@pytest.mark.parametrize("client", ["direct", "huggingface_hub"])
def test_https_with_the_ca_named(
    hub_tls: HubEmulator, repo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    assert hub_tls.url is not None and hub_tls.url.startswith("https://")
    monkeypatch.setenv("SSL_CERT_FILE", str(hub_tls.ca_file))  # type: ignore[attr-defined]
    if client == "huggingface_hub":
        monkeypatch.setenv("PARAMTOOL_HUB_CLIENT", "huggingface_hub")
        if huggingface_hub.__version__.startswith("0."):  # requests: its own variable
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(hub_tls.ca_file))  # type: ignore[attr-defined]
    _same(cli_json("inspect", "org/tiny"), repo["local"])
    assert any(r.path.startswith("/cdn-lfs/") for r in hub_tls.requests)  # the CDN too


def test_https_ca_directory(
    hub_tls: HubEmulator, repo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SSL_CERT_DIR: a folder of CA certificates named by their subject hash."""
    ca = Path(hub_tls.ca_file)  # type: ignore[attr-defined]
    folder = tmp_path / "certs"
    folder.mkdir()
    digest = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(ca)],
        capture_output=True,
        text=True,
        check=False,
    )
    if digest.returncode != 0:
        pytest.skip("no openssl command to name the CA by its hash")
    (folder / f"{digest.stdout.strip()}.0").write_bytes(ca.read_bytes())
    monkeypatch.setenv("SSL_CERT_DIR", str(folder))
    _same(cli_json("inspect", "org/tiny"), repo["local"])


@pytest.mark.parametrize("client", ["direct", "huggingface_hub"])
def test_untrusted_certificate_is_one_line(
    hub_tls: HubEmulator, repo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    """No CA variable: the system's store does not hold the test CA."""
    assert "SSL_CERT_FILE" not in os.environ
    if client == "huggingface_hub":
        monkeypatch.setenv("PARAMTOOL_HUB_CLIENT", "huggingface_hub")
    line = error_line(cli("inspect", "org/tiny"))
    assert "certificate is not trusted" in line, line
    assert "SSL_CERT_FILE" in line, line
    assert not any(r.path.startswith("/cdn-lfs/") for r in hub_tls.requests)


def test_untrusted_certificate_in_a_subprocess(hub_tls: HubEmulator, repo: dict[str, Any]) -> None:
    """The console script too: one line, exit 2, no traceback."""
    r = subprocess.run(
        [sys.executable, "-m", "paramtool", "inspect", "org/tiny"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PARAMTOOL_HUB_TIMEOUT": "10"},
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("paramtool: error: "), r.stderr
    assert "certificate is not trusted" in r.stderr, r.stderr
