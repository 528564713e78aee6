"""paramtool verify --signature: model-signing's own signer writes the signatures here."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from model_signing import signing

from paramtool.values.signatures import SignatureError, verify_signature


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.with_suffix(".pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "sub" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return model


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    model = _model(tmp_path)
    _key(tmp_path / "key.pem")
    sig = model / "model.sig"
    signing.Config().use_elliptic_key_signer(private_key=tmp_path / "key.pem").sign(model, sig)
    return model, sig, tmp_path / "key.pub"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paramtool", "verify", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_key_signature_verifies(signed: tuple[Path, Path, Path]) -> None:
    model, sig, pub = signed
    r = verify_signature(model, sig, public_key=str(pub))
    assert r.ok and r.signature_valid and r.reason is None
    assert [f.path for f in r.files] == ["config.json", "sub/model.safetensors"]
    assert {f.status for f in r.files} == {"ok"}
    assert r.uncovered == ()
    assert ".git" in r.ignored and "model.sig" in r.ignored
    doc = json.loads(json.dumps(r.to_dict()))
    assert doc["ok"] is True and doc["counts"]["covered"] == 2


def test_tampered_byte_names_the_file(signed: tuple[Path, Path, Path]) -> None:
    model, sig, pub = signed
    target = model / "sub" / "model.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    target.write_bytes(bytes(data))
    r = verify_signature(model, sig, public_key=str(pub))
    assert not r.ok and r.signature_valid
    assert r.changed == ("sub/model.safetensors",) and r.missing == ()


def test_extra_file_is_uncovered_and_fails_unless_allowed(
    signed: tuple[Path, Path, Path],
) -> None:
    model, sig, pub = signed
    (model / "extra.py").write_text("import os\n")
    r = verify_signature(model, sig, public_key=str(pub))
    assert r.uncovered == ("extra.py",) and not r.ok
    assert verify_signature(model, sig, public_key=str(pub), allow_uncovered=True).ok
    run = _cli(str(model), "--signature", str(sig), "--public-key", str(pub))
    assert run.returncode == 1 and "uncovered extra.py" in run.stdout
    run = _cli(str(model), "--signature", str(sig), "--public-key", str(pub), "--allow-uncovered")
    assert run.returncode == 0, run.stderr


def test_deleted_file_is_missing(signed: tuple[Path, Path, Path]) -> None:
    model, sig, pub = signed
    (model / "config.json").unlink()
    r = verify_signature(model, sig, public_key=str(pub))
    assert r.missing == ("config.json",) and r.changed == () and not r.ok


def test_wrong_key_fails(signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model, sig, _ = signed
    _key(tmp_path / "other.pem")
    r = verify_signature(model, sig, public_key=str(tmp_path / "other.pub"))
    assert not r.ok and not r.signature_valid and r.reason
    assert {f.status for f in r.files} == {None}
    run = _cli(str(model), "--signature", str(sig), "--public-key", str(tmp_path / "other.pub"))
    assert run.returncode == 1 and "NOT verified" in run.stdout


def test_corrupt_signature_is_one_error_line(signed: tuple[Path, Path, Path]) -> None:
    model, sig, pub = signed
    sig.write_text(sig.read_text()[:40])
    with pytest.raises(SignatureError):
        verify_signature(model, sig, public_key=str(pub))
    run = _cli(str(model), "--signature", str(sig), "--public-key", str(pub))
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("paramtool: error: ")


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(signer, hashes.SHA256())


def test_certificate_signature(tmp_path: Path) -> None:
    model = _model(tmp_path)
    ca_key = _key(tmp_path / "ca.pem")
    leaf_key = _key(tmp_path / "leaf.pem")
    pem = serialization.Encoding.PEM
    ca = _cert("test CA", ca_key, "test CA", ca_key, ca=True)
    leaf = _cert("signer", leaf_key, "test CA", ca_key, ca=False)
    (tmp_path / "ca.crt").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.crt").write_bytes(leaf.public_bytes(pem))
    sig = tmp_path / "model.sig"
    signing.Config().use_certificate_signer(
        private_key=tmp_path / "leaf.pem",
        signing_certificate=tmp_path / "leaf.crt",
        certificate_chain=[tmp_path / "ca.crt"],
    ).sign(model, sig)
    r = verify_signature(model, sig, certificate_chain=[str(tmp_path / "ca.crt")])
    assert r.ok and r.method == "certificate", r.reason
    pinned = verify_signature(
        model,
        sig,
        certificate=str(tmp_path / "leaf.crt"),
        certificate_chain=[str(tmp_path / "ca.crt")],
    )
    assert pinned.ok
    other = verify_signature(
        model,
        sig,
        certificate=str(tmp_path / "ca.crt"),
        certificate_chain=[str(tmp_path / "ca.crt")],
    )
    assert not other.ok and "another certificate" in (other.reason or "")
    # an untrusted root: the chain does not verify
    _key(tmp_path / "rogue.pem")
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _cert("rogue CA", rogue_key, "rogue CA", rogue_key, ca=True)
    (tmp_path / "rogue.crt").write_bytes(rogue.public_bytes(pem))
    bad = verify_signature(model, sig, certificate_chain=[str(tmp_path / "rogue.crt")])
    assert not bad.ok and not bad.signature_valid


def test_sigstore_offline_is_one_line_quickly(signed: tuple[Path, Path, Path]) -> None:
    model, sig, _ = signed
    start = time.monotonic()
    run = _cli(
        str(model),
        "--signature",
        str(sig),
        "--sigstore",
        "--identity",
        "someone@example.com",
        "--identity-provider",
        "https://example.invalid",
    )
    assert time.monotonic() - start < 30
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "sigstore" in run.stderr


def test_deadline_bounds_a_call_that_never_returns() -> None:
    from paramtool.values.signatures import _with_deadline

    start = time.monotonic()
    with pytest.raises(SignatureError, match="trust root"):
        _with_deadline(lambda: time.sleep(30), 0.2, "sigstore", "cannot fetch the trust root")
    assert time.monotonic() - start < 5
