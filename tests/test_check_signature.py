"""``paramtool check --signature``: the model-signing rule, with signatures that model-signing's
own signer writes here (keys and certificates generated in the tests, nothing fetched)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from jsonschema import Draft202012Validator
from model_signing import hashing, signing

import paramtool
from helpers import cli, cli_json, error_line
from test_signatures import _cert, _key

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tiny-llama"
SCHEMAS = ROOT / "docs" / "schemas"


def schema_errors(command: str, doc: object) -> list[str]:
    schema = json.loads((SCHEMAS / f"{command}.schema.json").read_text(encoding="utf-8"))
    return [e.message for e in Draft202012Validator(schema).iter_errors(doc)]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in a fresh folder: no config file of the repo or the machine is found."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the example, signed with a fresh P-256 key: (folder, signature, public key)."""
    model = tmp_path / "model"
    shutil.copytree(EXAMPLE, model)
    _key(tmp_path / "key.pem")
    sig = model / "model.sig"
    signing.Config().use_elliptic_key_signer(private_key=tmp_path / "key.pem").sign(model, sig)
    return model, sig, tmp_path / "key.pub"


def check(*args: str, code: int) -> dict:
    doc = cli_json("check", "--no-config", *args, code=code)
    assert not schema_errors("check", doc), schema_errors("check", doc)
    return doc


def test_a_good_signature_passes(signed: tuple[Path, Path, Path]) -> None:
    model, sig, pub = signed
    doc = check(str(model), "--signature", str(sig), "--public-key", str(pub), code=0)
    [rule] = doc["rules"]
    assert rule == {
        "name": "signature",
        "status": "pass",
        "passed": True,
        "measured": {
            "signature_valid": True,
            "reason": None,
            "covered": 2,  # config.json and model.safetensors; the .sig is never listed
            "changed": [],
            "missing": [],
            "uncovered": [],
        },
        "limit": {"signature": str(sig), "method": "key", "allow_uncovered": False},
        "message": "key signature verified, 2 covered files intact",
    }
    r = cli("check", "--no-config", str(model), "--signature", str(sig), "--public-key", str(pub))
    assert r.exit_code == 0 and "signature" in r.stdout and "2/2 intact" in r.stdout
    # one weight file stands for the folder holding it
    weights = str(model / "model.safetensors")
    check(weights, "--signature", str(sig), "--public-key", str(pub), "--max-size", "3MB", code=0)


def test_a_tampered_file_fails_naming_it(signed: tuple[Path, Path, Path]) -> None:
    model, sig, pub = signed
    target = model / "model.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 1  # a weight byte: the header still reads
    target.write_bytes(bytes(data))
    doc = check(str(model), "--signature", str(sig), "--public-key", str(pub), code=1)
    [rule] = doc["rules"]
    assert rule["status"] == "fail" and rule["measured"]["changed"] == ["model.safetensors"]
    assert "model.safetensors changed" in rule["message"]
    (model / "config.json").unlink()
    doc = check(str(model), "--signature", str(sig), "--public-key", str(pub), code=1)
    assert doc["rules"][0]["measured"]["missing"] == ["config.json"]


def test_an_uncovered_file_fails_unless_allowed(signed: tuple[Path, Path, Path]) -> None:
    model, sig, pub = signed
    (model / "modeling_evil.py").write_text("import os\n")
    args = (str(model), "--signature", str(sig), "--public-key", str(pub))
    doc = check(*args, code=1)
    assert doc["rules"][0]["measured"]["uncovered"] == ["modeling_evil.py"]
    assert "modeling_evil.py uncovered" in doc["rules"][0]["message"]
    doc = check(*args, "--allow-uncovered", code=0)
    assert doc["rules"][0]["limit"]["allow_uncovered"] is True
    assert "1 uncovered file allowed (modeling_evil.py)" in doc["rules"][0]["message"]


def test_another_key_does_not_verify(signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model, sig, _ = signed
    _key(tmp_path / "other.pem")
    doc = check(
        str(model), "--signature", str(sig), "--public-key", str(tmp_path / "other.pub"), code=1
    )
    m = doc["rules"][0]["measured"]
    assert m["signature_valid"] is False and m["reason"]
    assert doc["rules"][0]["message"].startswith("the key signature does not verify: ")


def test_certificate_signatures(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(EXAMPLE, model)
    ca_key, leaf_key = _key(tmp_path / "ca.pem"), _key(tmp_path / "leaf.pem")
    pem = serialization.Encoding.PEM
    ca = _cert("test CA", ca_key, "test CA", ca_key, ca=True)
    (tmp_path / "ca.crt").write_bytes(ca.public_bytes(pem))
    leaf = _cert("signer", leaf_key, "test CA", ca_key, ca=False)
    (tmp_path / "leaf.crt").write_bytes(leaf.public_bytes(pem))
    sig = tmp_path / "model.sig"  # outside the folder
    signing.Config().use_certificate_signer(
        private_key=tmp_path / "leaf.pem",
        signing_certificate=tmp_path / "leaf.crt",
        certificate_chain=[tmp_path / "ca.crt"],
    ).sign(model, sig)
    chain = ("--certificate-chain", str(tmp_path / "ca.crt"))
    doc = check(str(model), "--signature", str(sig), *chain, code=0)
    assert doc["rules"][0]["limit"]["method"] == "certificate"
    pinned = ("--certificate", str(tmp_path / "leaf.crt"))
    check(str(model), "--signature", str(sig), *chain, *pinned, code=0)
    wrong = ("--certificate", str(tmp_path / "ca.crt"))
    doc = check(str(model), "--signature", str(sig), *chain, *wrong, code=1)
    assert "another certificate" in doc["rules"][0]["message"]


def test_shard_serialization(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(EXAMPLE, model)
    _key(tmp_path / "key.pem")
    sig = tmp_path / "model.sig"
    config = signing.Config().use_elliptic_key_signer(private_key=tmp_path / "key.pem")
    config.set_hashing_config(hashing.Config().use_shard_serialization(shard_size=1 << 20))
    config.sign(model, sig)
    args = (str(model), "--signature", str(sig), "--public-key", str(tmp_path / "key.pub"))
    assert check(*args, code=0)["rules"][0]["measured"]["covered"] == 2
    doc = cli_json("verify", *args, code=0)
    assert doc["serialization"]["method"] == "shards" and len(doc["files"][1]["digests"]) == 3
    assert not schema_errors("verify", doc), schema_errors("verify", doc)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--public-key", "{absent}"), ["--public-key", "no such file"]),
        (("--public-key", "{model}"), ["--public-key", "not a file"]),
        ((), ["--signature", "exactly one way", "--public-key", "--sigstore"]),
        (("--public-key", "{pub}", "--certificate", "{pub}"), ["exactly one way"]),
        (("--sigstore", "--identity", "me@example.com"), ["--sigstore", "--identity-provider"]),
        (("--public-key", "{pub}", "--identity", "me@example.com"), ["--identity", "--sigstore"]),
        (("--public-key", "{pub}", "--trust-config", "{pub}"), ["--trust-config", "--sigstore"]),
        (("--public-key", "{config}"), ["not a usable public key"]),
    ],
    ids=[
        "missing-key",
        "key-is-a-folder",
        "no-way",
        "two-ways",
        "sigstore-half",
        "identity-alone",
        "trust-config-alone",
        "not-a-key",
    ],  # fmt: skip
)
def test_bad_signature_options_are_one_error_line(
    signed: tuple[Path, Path, Path], tmp_path: Path, args: tuple[str, ...], words: list[str]
) -> None:
    model, sig, pub = signed
    names = {"absent": str(tmp_path / "absent.pub"), "model": str(model), "pub": str(pub),
             "config": str(model / "config.json")}  # fmt: skip
    filled = [a.format(**names) for a in args]
    r = cli("check", "--no-config", str(model), "--signature", str(sig), *filled, "--json")
    error_line(r, *words)


def test_signer_options_need_signature(signed: tuple[Path, Path, Path]) -> None:
    model, _, pub = signed
    r = cli("check", "--no-config", str(model), "--max-size", "3MB", "--public-key", str(pub))
    error_line(r, "--public-key", "only applies together with --signature")
    r = cli("check", "--no-config", str(model), "--max-size", "3MB", "--allow-uncovered")
    error_line(r, "--allow-uncovered", "--signature")


def test_a_missing_or_corrupt_signature_is_one_error_line(
    signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    model, sig, pub = signed
    r = cli("check", "--no-config", str(model), "--signature", str(tmp_path / "no.sig"),
            "--public-key", str(pub))  # fmt: skip
    error_line(r, "--signature", "no such file")
    sig.write_text(sig.read_text()[:40])
    r = cli("check", "--no-config", str(model), "--signature", str(sig), "--public-key", str(pub))
    error_line(r, "not a model-signing bundle")


def test_a_hub_source_is_unavailable_and_reads_no_signature(hub, tmp_path: Path) -> None:
    hub.add_repo("org/tiny", EXAMPLE)
    _key(tmp_path / "k.pem")
    (tmp_path / "model.sig").write_text("not read")
    doc = check("org/tiny", "--signature", str(tmp_path / "model.sig"), "--public-key",
                str(tmp_path / "k.pub"), code=1)  # fmt: skip
    [rule] = doc["rules"]
    assert rule["status"] == "unavailable" and rule["measured"] is None
    assert "local folder" in rule["message"] and "gate fails" in rule["message"]


def test_config_file_keys_relative_to_the_file(
    signed: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, sig, pub = signed
    _key(tmp_path / "other.pem")
    (tmp_path / "paramtool.toml").write_text(
        "[check]\n"
        'signature = "model/model.sig"\n'
        'public-key = "other.pub"\n'  # the wrong signer: the command line replaces it
        "allow_uncovered = true\n"
    )
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # found upward; its file names stay relative to it
    (model / "notes.txt").write_text("uncovered, allowed by the file\n")
    r = cli("check", str(model), "--json")
    assert r.exit_code == 1 and "rules from" in r.stderr
    doc = json.loads(r.stdout)
    assert doc["rules"][0]["measured"]["signature_valid"] is False
    assert doc["rules"][0]["limit"]["signature"] == str(tmp_path / "model" / "model.sig")
    doc = cli_json("check", str(model), "--public-key", str(pub))
    assert doc["passed"] and doc["rules"][0]["measured"]["uncovered"] == ["notes.txt"]
    # a way given on the command line replaces the file's way wholesale: not two ways
    r = cli("check", str(model), "--certificate-chain", str(pub), "--json")
    lines = r.stderr.splitlines()
    assert r.exit_code == 2 and r.stdout == "" and len(lines) == 2, r.stderr
    assert lines[0].startswith("paramtool: note: rules from ")
    assert lines[1].startswith("paramtool: error: ") and "not usable certificates" in lines[1]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("signature = 1", ["paramtool.toml: signature", "a file name"]),
        ('signature = "absent.sig"', ["paramtool.toml: signature", "no such file"]),
        ('certificate_chain = "ca.pem"', ["certificate_chain", "no such file"]),
        ("certificate_chain = [1]", ["certificate_chain", "a list of file names"]),
        ('sigstore = "yes"', ["sigstore", "true or false"]),
        ('identity = ""', ["identity", "must not be empty"]),
        ('signatur = "x.sig"', ["signatur", "did you mean 'signature'"]),
    ],
)
def test_config_file_errors(tmp_path: Path, line: str, words: list[str]) -> None:
    (tmp_path / "paramtool.toml").write_text(f'[check]\nmax_size = "3MB"\n{line}\n')
    error_line(cli("check", str(EXAMPLE)), *words)


def test_the_python_api(signed: tuple[Path, Path, Path]) -> None:
    model, sig, pub = signed
    report = paramtool.check(model, {"signature": str(sig), "public_key": str(pub)})
    assert report.passed and report.findings[0].name == "signature"
    (model / "extra.bin").write_bytes(b"\0")
    assert not paramtool.check(model, {"signature": str(sig), "public_key": str(pub)}).passed


def test_verify_signature_json_matches_its_schema(
    signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    model, sig, pub = signed
    (model / "extra.py").write_text("")
    for args, code in (
        (("--public-key", str(pub), "--allow-uncovered"), 0),
        (("--public-key", str(pub)), 1),
        (("--public-key", str(_other_pub(tmp_path))), 1),
    ):
        doc = cli_json("verify", str(model), "--signature", str(sig), *args, code=code)
        assert not schema_errors("verify", doc), schema_errors("verify", doc)
        assert schema_errors("verify", {**doc, "surprise": 1})
        assert schema_errors("verify", {**doc, "files": [{**doc["files"][0], "status": "fine"}]})


def _other_pub(tmp_path: Path) -> Path:
    _key(tmp_path / "third.pem")
    return tmp_path / "third.pub"


def test_verify_text_escapes_hostile_names(signed: tuple[Path, Path, Path]) -> None:
    model, sig, pub = signed
    (model / "evil\x1b[2Jname.py").write_text("")
    r = cli("verify", str(model), "--signature", str(sig), "--public-key", str(pub))
    assert r.exit_code == 1 and "\x1b" not in r.stdout
    assert "uncovered evil?[2Jname.py (fails)" in r.stdout


def test_check_help_and_other_rules_do_not_load_model_signing() -> None:
    script = (
        "import sys\n"
        "from paramtool.cli import main\n"  # the console script: main(), then os._exit
        "sys.argv = ['paramtool', *sys.argv[1:]]\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "print([m for m in ('model_signing', 'OpenSSL', 'cryptography') if m in sys.modules],"
        " file=sys.stderr)\n"
    )
    for argv in (["check", "--help"], ["check", "--no-config", "--dtype", "bf16", str(EXAMPLE)]):
        p = subprocess.run(
            [sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=120
        )
        assert p.stderr.strip().splitlines()[-1] == "[]", (argv, p.stderr)
