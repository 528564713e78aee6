"""``paramtool hash`` and ``paramtool verify``: integrity of files and of the weights in them."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from paramtool.cli.common import (
    CertificateChainOpt,
    CertificateOpt,
    DownloadOpt,
    IdentityOpt,
    IdentityProviderOpt,
    JsonOpt,
    PublicKeyOpt,
    RevisionOpt,
    SigstoreOpt,
    SourcesArg,
    SubfolderOpt,
    TokenOpt,
    TrustConfigOpt,
    WorkersOpt,
    check_workers,
    die,
    handle_errors,
    print_json,
    stdout_console,
    warn,
)
from paramtool.cli.root import app


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
    workers: WorkersOpt = None,
) -> None:
    """SHA-256 of each file (as sha256sum and the Hub's LFS record), tensor and weights digests.

    The weights digest is the same for the same tensors however they are sharded.
    """
    from paramtool import api
    from paramtool.render.values_progress import byte_progress

    check_workers(workers)
    with byte_progress("Hashing", enabled=not json_) as progress:
        report = api.digest(
            sources,
            download=download,
            workers=workers,
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
        from paramtool.render.signature import signature_lines

        sys.stdout.write("\n".join(signature_lines(report)) + "\n")
    return 0 if report.ok else 1


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
    public_key: PublicKeyOpt = None,
    certificate: CertificateOpt = None,
    certificate_chain: CertificateChainOpt = None,
    sigstore: SigstoreOpt = False,
    identity: IdentityOpt = None,
    identity_provider: IdentityProviderOpt = None,
    trust_config: TrustConfigOpt = None,
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
