"""``paramtool hash`` and ``paramtool verify``: integrity of files and of the weights in them."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from paramtool.cli.common import (
    DownloadOpt,
    JsonOpt,
    RevisionOpt,
    SourcesArg,
    SubfolderOpt,
    TokenOpt,
    die,
    handle_errors,
    print_json,
    stdout_console,
    warn,
)
from paramtool.cli.root import app

if TYPE_CHECKING:
    from paramtool.values.signatures import SignatureReport


@app.command("hash")
@handle_errors
def hash_command(
    sources: SourcesArg,
    tensors: Annotated[
        bool, typer.Option("--tensors", help="Also print each tensor's content digest.")
    ] = False,
    download: DownloadOpt = False,
    json_: JsonOpt = False,
    revision: RevisionOpt = None,
    token: TokenOpt = None,
    subfolder: SubfolderOpt = None,
) -> None:
    """SHA-256 of each file (as sha256sum and the Hub's LFS record), tensor and weights digests.

    The weights digest is the same for the same tensors however they are sharded.
    """
    from paramtool import api
    from paramtool.render.values_progress import byte_progress

    with byte_progress("Hashing", enabled=not json_) as progress:
        report = api.digest(
            sources,
            download=download,
            revision=revision,
            token=token,
            subfolder=subfolder,
            progress=progress,
        )
    for w in report.checkpoint.warnings:
        warn(w)
    if json_:
        print_json(report.to_dict())
        return
    from paramtool.render.values_text import hash_lines

    sys.stdout.write("\n".join(hash_lines(report, tensors=tensors)) + "\n")


@handle_errors
def _verify(
    path: str, against: str | None, subfolder: str | None, token: str | None, json_: bool
) -> int:
    from paramtool import api
    from paramtool.render.values_progress import byte_progress

    with byte_progress("Hashing", enabled=not json_) as progress:
        report = api.verify(
            path, against or "", subfolder=subfolder, token=token, progress=progress
        )
    if json_:
        print_json(report.to_dict())
    else:
        from paramtool.render.values_tables import verify_report

        stdout_console().print(verify_report(report))
    return 0 if report.ok else 1


@handle_errors
def _verify_signature(path: str, signature: str, json_: bool, **how: Any) -> int:
    from paramtool.values.signatures import verify_signature

    report = verify_signature(path, signature, **how)
    for w in report.warnings:
        warn(w)
    if json_:
        print_json(report.to_dict())
    else:
        sys.stdout.write("\n".join(_signature_lines(report)) + "\n")
    return 0 if report.ok else 1


def _signature_lines(report: SignatureReport) -> list[str]:
    from paramtool.safe_text import clip

    verdict = "verified" if report.ok else "NOT verified"
    lines = [f"{clip(report.path)}: {verdict} ({report.method} signature {clip(report.signature)})"]
    if report.reason:
        lines.append(f"  reason: {clip(report.reason)}")
    hashed = report.serialization.get("hash_type", "?")
    per = report.serialization.get("method", "?")
    lines.append(f"  covers {len(report.files)} file(s), {hashed} per {per}")
    for f in report.files:
        lines.append(f"  {f.status or 'unchecked':9} {clip(f.path)}")
    for u in report.uncovered:
        note = "allowed" if report.allow_uncovered else "fails"
        lines.append(f"  uncovered {clip(u)} ({note})")
    lines.append("  ignored: " + ", ".join(clip(i) for i in report.ignored))
    return lines


@app.command("verify")
def verify_command(
    path: Annotated[
        str,
        typer.Argument(
            metavar="PATH",
            help="A local checkpoint folder (or one file) to check.",
            show_default=False,
        ),
    ],
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            metavar="ORG/NAME[@REV]",
            help="The Hub repo (and revision) whose recorded hashes to compare with.",
        ),
    ] = None,
    subfolder: SubfolderOpt = None,
    token: TokenOpt = None,
    signature: Annotated[
        str | None,
        typer.Option(
            "--signature",
            metavar="FILE",
            help="An OpenSSF model-signing signature over PATH to verify (instead of --against).",
        ),
    ] = None,
    public_key: Annotated[
        str | None,
        typer.Option("--public-key", metavar="FILE", help="The signer's EC public key (PEM)."),
    ] = None,
    certificate: Annotated[
        str | None,
        typer.Option(
            "--certificate",
            metavar="FILE",
            help="The exact signing certificate (PEM) the signature must carry.",
        ),
    ] = None,
    certificate_chain: Annotated[
        list[str] | None,
        typer.Option(
            "--certificate-chain",
            metavar="FILE",
            help="Trusted CA certificate(s) (PEM) for a certificate signature; repeatable.",
        ),
    ] = None,
    sigstore: Annotated[
        bool,
        typer.Option(
            "--sigstore", help="A Sigstore signature: give --identity and --identity-provider."
        ),
    ] = False,
    identity: Annotated[
        str | None,
        typer.Option(
            "--identity", metavar="ID", help="The Sigstore signer's identity (email, URI)."
        ),
    ] = None,
    identity_provider: Annotated[
        str | None,
        typer.Option("--identity-provider", metavar="URL", help="The signer's OIDC issuer."),
    ] = None,
    trust_config: Annotated[
        str | None,
        typer.Option(
            "--trust-config",
            metavar="FILE",
            help="A Sigstore client trust config, to verify without fetching the trust root.",
        ),
    ] = None,
    allow_uncovered: Annotated[
        bool,
        typer.Option(
            "--allow-uncovered", help="Files the signature does not cover do not fail the check."
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Compare local files with the Hub's hashes, or verify a model-signing signature.

    With --against: the checkpoint's weights and index must be present; other files the
    repo lists are checked when present. With --signature: the signature must verify with
    the key, certificate or Sigstore identity, every file it covers must match, and every
    other file (but .git paths and the signature itself) fails unless --allow-uncovered.
    Exit status 1 when a file differs or is missing, or the signature does not verify.
    """
    if signature is not None:
        if against is not None:
            raise die("give --against or --signature, not both")
        if sigstore and (identity is None or identity_provider is None):
            raise die("--sigstore needs --identity and --identity-provider")
        if not sigstore and (identity is not None or identity_provider is not None):
            raise die("--identity and --identity-provider need --sigstore")
        code = _verify_signature(
            path,
            signature,
            json_,
            public_key=public_key,
            certificate=certificate,
            certificate_chain=tuple(certificate_chain or ()),
            identity=identity,
            identity_provider=identity_provider,
            trust_config=trust_config,
            allow_uncovered=allow_uncovered,
        )
        if code:
            raise typer.Exit(code)
        return
    if public_key or certificate or certificate_chain or sigstore or allow_uncovered:
        raise die("--public-key, --certificate, --sigstore and --allow-uncovered need --signature")
    if against is None:
        raise die("give --against ORG/NAME or --signature FILE")
    code = _verify(path, against, subfolder, token, json_)
    if code:
        raise typer.Exit(code)
