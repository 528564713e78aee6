"""``paramtool check``: gate a checkpoint in CI on its size, parameters, dtypes and structure.

Exit codes: 0 every rule passed, 1 a rule failed or could not be evaluated, 2 error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from paramtool.cli.common import (
    CertificateChainOpt,
    CertificateOpt,
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
    handle_errors,
    note,
    print_json,
    stdout_console,
    warn,
)
from paramtool.cli.root import app
from paramtool.errors import UsageError

ListOpt = list[str] | None


def _opt(flag: str, metavar: str, help: str) -> Any:
    return typer.Option(flag, metavar=metavar, help=help, show_default=False)


@app.command("check")
def check_command(
    sources: SourcesArg,
    max_size: Annotated[
        str | None,
        _opt(
            "--max-size",
            "SIZE",
            "Fail when the files hold more bytes (headers included): 16GB, 15GiB, 500MB.",
        ),
    ] = None,
    min_size: Annotated[
        str | None, _opt("--min-size", "SIZE", "Fail when the files hold fewer bytes.")
    ] = None,
    max_params: Annotated[
        str | None,
        _opt("--max-params", "N", "Fail above this many parameters: 8.1B, 405M, 8030261248."),
    ] = None,
    min_params: Annotated[
        str | None, _opt("--min-params", "N", "Fail below this many parameters.")
    ] = None,
    expect_params: Annotated[
        str | None, _opt("--expect-params", "N", "The exact parameter count (see --tolerance).")
    ] = None,
    tolerance: Annotated[
        str | None,
        _opt(
            "--tolerance",
            "PERCENT",
            "How far from --expect-params still passes: 0.1% or 0.001 (default exact).",
        ),
    ] = None,
    dtype: Annotated[
        str | None,
        _opt(
            "--dtype",
            "DTYPE",
            "Every floating-point tensor must be this dtype: bf16, f16, f32, fp8...",
        ),
    ] = None,
    allow_dtypes: Annotated[
        ListOpt,
        _opt(
            "--allow-dtypes",
            "LIST",
            "Every tensor's dtype must be one of these, e.g. bf16,f32 (repeatable).",
        ),
    ] = None,
    max_share: Annotated[
        ListOpt,
        _opt(
            "--max-share",
            "CATEGORY=PERCENT",
            "Most of the parameters an anatomy category may hold, e.g. other=5% (repeatable).",
        ),
    ] = None,
    expect_layers: Annotated[
        str | None,
        _opt("--expect-layers", "N", "The number of layers (blocks) the tensor names must show."),
    ] = None,
    require_metadata: Annotated[
        ListOpt,
        _opt(
            "--require-metadata",
            "KEY=VALUE",
            "Every file's __metadata__ must hold KEY, or KEY=VALUE, e.g. format=pt (repeatable).",
        ),
    ] = None,
    safetensors_only: Annotated[
        bool,
        typer.Option(
            "--safetensors-only",
            help="Fail when the weights, or files beside them, are pickles (.bin .pt .pth .ckpt).",
        ),
    ] = False,
    no_unsafe_pickle: Annotated[
        bool,
        typer.Option(
            "--no-unsafe-pickle",
            help="Fail when a pickled weight file names globals outside the state-dict allowlist.",
        ),
    ] = False,
    no_remote_code: Annotated[
        bool,
        typer.Option(
            "--no-remote-code",
            help="Fail when config.json declares custom code (auto_map, custom_pipelines).",
        ),
    ] = False,
    no_nan: Annotated[
        bool,
        typer.Option(
            "--no-nan", help="No NaN in any floating-point tensor (reads the values, streaming)."
        ),
    ] = False,
    no_inf: Annotated[
        bool,
        typer.Option(
            "--no-inf", help="No +-Inf in any floating-point tensor (reads the values, streaming)."
        ),
    ] = False,
    sha256: Annotated[
        ListOpt,
        _opt(
            "--sha256",
            "FILE=HEX",
            "A file's SHA-256, as sha256sum prints it (reads the file).",
        ),
    ] = None,
    against_hub: Annotated[
        str | None,
        _opt(
            "--against-hub",
            "ORG/NAME@REV",
            "The local files match the hashes this Hub repo records (nothing downloaded).",
        ),
    ] = None,
    signature: Annotated[
        str | None,
        _opt(
            "--signature",
            "FILE",
            "An OpenSSF model-signing signature over the folder must verify (see verify).",
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
            "--allow-uncovered", help="Files the signature does not cover do not fail --signature."
        ),
    ] = False,
    config: Annotated[
        Path | None,
        _opt(
            "--config",
            "FILE",
            "Read rules from this file instead of searching for paramtool.toml/pyproject.toml.",
        ),
    ] = None,
    no_config: Annotated[
        bool, typer.Option("--no-config", help="Ignore config files: command-line rules only.")
    ] = False,
    json_: JsonOpt = False,
    markdown: Annotated[
        bool,
        typer.Option(
            "--markdown", help="Print a Markdown table (for a PR comment or $GITHUB_STEP_SUMMARY)."
        ),
    ] = False,
    junit_xml: Annotated[
        Path | None,
        _opt("--junit-xml", "FILE", "Also write a JUnit XML report, one test case per rule."),
    ] = None,
    revision: RevisionOpt = None,
    token: TokenOpt = None,
    subfolder: SubfolderOpt = None,
) -> None:
    """Gate a checkpoint in CI: exit 0 when every rule passes, 1 when one fails, 2 on error.

    Rules come from the command line and from a config file: the check
    table of paramtool.toml, or tool.paramtool.check in pyproject.toml,
    searched from the current directory upward. A flag replaces the
    config's rule of the same name.
    """
    options = {
        "max_size": max_size,
        "min_size": min_size,
        "max_params": max_params,
        "min_params": min_params,
        "expect_params": expect_params,
        "tolerance": tolerance,
        "dtype": dtype,
        "allow_dtypes": allow_dtypes,
        "max_share": max_share,
        "expect_layers": expect_layers,
        "require_metadata": require_metadata,
        "safetensors_only": safetensors_only,
        "no_unsafe_pickle": no_unsafe_pickle,
        "no_remote_code": no_remote_code,
        "no_nan": no_nan,
        "no_inf": no_inf,
        "sha256": sha256,
        "against_hub": against_hub,
        "signature": signature,
        "public_key": public_key,
        "certificate": certificate,
        "certificate_chain": certificate_chain,
        "sigstore": sigstore,
        "identity": identity,
        "identity_provider": identity_provider,
        "trust_config": trust_config,
        "allow_uncovered": allow_uncovered,
    }
    code = _run(
        sources,
        options,
        config=config,
        no_config=no_config,
        json_=json_,
        markdown=markdown,
        junit_xml=junit_xml,
        revision=revision,
        token=token,
        subfolder=subfolder,
    )
    if code:
        raise typer.Exit(code)


@handle_errors
def _run(
    sources: list[str],
    options: dict[str, Any],
    *,
    config: Path | None,
    no_config: bool,
    json_: bool,
    markdown: bool,
    junit_xml: Path | None,
    revision: str | None,
    token: str | None,
    subfolder: str | None,
) -> int:
    """Everything but the exit: returns 0 or 1 (errors raise, and exit 2)."""
    from paramtool import api
    from paramtool.checks.config import discover, load_config
    from paramtool.checks.rules import finalize, parse_rules

    if json_ and markdown:
        raise UsageError("--json/--markdown", "choose one output format")
    if config is not None and no_config:
        raise UsageError("--config/--no-config", "give one or the other")
    cli_rules = parse_rules(options)
    cfg = None
    if config is not None:
        cfg = load_config(config, explicit=True)
    elif not no_config:
        cfg = discover()
    if cfg is not None and cfg.rules.empty and not cli_rules.rules:
        raise UsageError("check", f"no rules given (none on the command line, none in {cfg.label})")
    rules = finalize([cfg.rules, cli_rules] if cfg is not None else [cli_rules])
    if cfg is not None:
        also = " and the command line (which wins)" if not cli_rules.empty else ""
        note(f"rules from {cfg.label}{also}")

    from paramtool.render.progress import count_progress

    shown = not (json_ or markdown)
    with count_progress("Reading shard headers", enabled=shown, min_total=8) as progress:
        report = api.check(
            sources,
            rules,
            revision=revision,
            token=token,
            subfolder=subfolder,
            config=cfg.label if cfg is not None else None,
            progress=progress,
        )
    for w in report.warnings:
        warn(w)

    if junit_xml is not None:
        from paramtool.render import check_junit

        try:
            check_junit.write(report, junit_xml)
        except OSError as e:
            raise UsageError(f"--junit-xml {str(junit_xml)!r}", e.strerror or str(e)) from None
    if json_:
        print_json(report.to_dict())
    elif markdown:
        from paramtool.render.check_markdown import to_markdown

        sys.stdout.write(to_markdown(report))
    else:
        from paramtool.render.check_tables import print_report

        print_report(stdout_console(), report)
    return report.exit_code
