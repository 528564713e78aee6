"""The core of ``paramtool check``: parsing rules, merging them, and every rule on real files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from layouts import llama31_8b, make_checkpoint, write_sparse_checkpoint
from paramtool import errors
from paramtool.checks.evaluate import evaluate
from paramtool.checks.findings import EVALUATORS, Finding, Report, register
from paramtool.checks.rules import FAIL, PASS, UNAVAILABLE, finalize, parse_rules
from paramtool.cli.common import flag as cli_flag
from paramtool.records import Checkpoint
from paramtool.sources.local import open_local

LLAMA_8B = 8_030_261_248


def rules(**options):
    return finalize([parse_rules(options)])


def check(path, **options) -> Report:
    paths = path if isinstance(path, list) else [path]
    return evaluate(open_local([str(p) for p in paths]), rules(**options))


def one(path, **options) -> Finding:
    (f,) = check(path, **options).findings
    return f


@pytest.fixture(scope="module")
def llama8b(tmp_path_factory) -> Path:
    """Llama-3.1-8B header-exact (4 sparse bf16 shards, an index, config.json)."""
    folder = tmp_path_factory.mktemp("llama8b")
    write_sparse_checkpoint(folder, llama31_8b())
    return folder


@pytest.fixture
def mixed(tmp_path) -> Path:
    """A small real file: bf16 weights, an f32 norm, an i64 buffer, 100 float parameters."""
    return make_checkpoint(
        tmp_path / "model.safetensors",
        {
            "model.embed_tokens.weight": ("BF16", (8, 8)),
            "model.layers.0.mlp.down_proj.weight": ("BF16", (4, 8)),
            "model.norm.weight": ("F32", (4,)),
            "model.position_ids": ("I64", (8,)),
        },
        metadata={"format": "pt"},
    )


# ---------------------------------------------------------------- sizes and counts


def test_max_and_min_size_are_inclusive_exact_bytes(mixed):
    size = mixed.stat().st_size
    f = one(mixed, max_size=str(size))
    assert (f.status, f.measured, f.limit) == (
        PASS,
        size,
        size,
    ) and "exactly at the limit" in f.message
    f = one(mixed, max_size=str(size - 1))
    assert f.status == FAIL and "over the limit" in f.message
    assert one(mixed, min_size=str(size)).status == PASS
    f = one(mixed, min_size=str(size + 1))
    assert f.status == FAIL and "under the minimum" in f.message


def test_size_units_decimal_and_binary(llama8b):
    total = sum(p.stat().st_size for p in llama8b.glob("*.safetensors"))
    assert 16 * 10**9 < total < 15 * 2**30  # 16.06 GB = 14.96 GiB
    f = one(llama8b, max_size="16GB")
    assert f.status == FAIL and f.measured == total and f.limit == 16 * 10**9
    assert f.measured_text == f"{total:,} B (16.1 GB)" and "in 4 files" in f.message
    f = one(llama8b, max_size="15GiB")
    assert f.status == PASS and f.limit == 15 * 2**30 and "15.0 GiB" in f.limit_text


def test_max_min_params(llama8b):
    assert one(llama8b, max_params="8.1B").status == PASS
    f = one(llama8b, max_params="8B")
    assert (f.status, f.measured, f.limit) == (FAIL, LLAMA_8B, 8 * 10**9)
    assert "30,261,248 (0.378%) over the limit" in f.message
    assert one(llama8b, min_params="8B").status == PASS
    assert one(llama8b, min_params="8.1B").status == FAIL


def test_expect_params_exact_by_default(llama8b):
    f = one(llama8b, expect_params=str(LLAMA_8B))
    assert f.status == PASS and f.message == "matches exactly"
    assert f.limit == {"expected": LLAMA_8B, "tolerance": 0.0, "min": LLAMA_8B, "max": LLAMA_8B}
    f = one(llama8b, expect_params=str(LLAMA_8B + 1))
    assert f.status == FAIL and "off by -1 (<0.001%)" in f.message


def test_expect_params_tolerance_bounds_are_exact(llama8b):
    f = one(llama8b, expect_params="8.03B", tolerance="0.1%")
    # 8.03e9 x (1 +- 1/1000): 8,021,970,000 .. 8,038,030,000
    assert f.status == PASS
    assert f.limit == {
        "expected": 8_030_000_000,
        "tolerance": 0.001,
        "min": 8_021_970_000,
        "max": 8_038_030_000,
    }
    assert f.limit_text == "8,030,000,000 (8.03B) ±0.1%"
    f = one(llama8b, expect_params="8B", tolerance="0.1%")
    assert f.status == FAIL and "off by +30,261,248 (+0.378%), outside ±0.1%" in f.message
    assert one(llama8b, expect_params=str(LLAMA_8B - 1), tolerance="0").status == FAIL
    assert one(llama8b, expect_params="8030261000", tolerance="0.000001%").status == FAIL  # +-80
    assert one(llama8b, expect_params="8030261000", tolerance="0.00001%").status == PASS  # +-803


def test_expect_params_band_is_inclusive(mixed):
    assert check(mixed, max_params="1B").findings[0].measured == 108
    f = one(mixed, expect_params="100", tolerance="8%")
    assert f.status == PASS and f.limit["max"] == 108 and "off by +8 (+8%), within ±8%" in f.message
    f = one(mixed, expect_params="100", tolerance="7.99%")
    assert (
        f.status == FAIL and f.limit["max"] == 107 and "(93 to 107)" in f.message
    )  # ceil(92.01), floor(107.99)


# ---------------------------------------------------------------- dtypes


def test_dtype_checks_only_floating_tensors(mixed):
    f = one(mixed, dtype="bf16")
    assert f.status == FAIL and f.limit == "BF16"
    assert f.measured == {"BF16": 2, "F32": 1}  # the I64 buffer is not floating
    assert (
        f.message == "1 of 3 floating-point tensors are not BF16: F32 ×1 (e.g. model.norm.weight)"
    )


def test_dtype_passes_on_an_all_bf16_checkpoint(llama8b):
    f = one(llama8b, dtype="BF16")
    assert (
        f.status == PASS
        and f.measured == {"BF16": 291}
        and f.message == "all 291 floating-point tensors are BF16"
    )


def test_allow_dtypes_takes_aliases_and_reports_offenders(mixed):
    f = one(mixed, allow_dtypes=["bf16,fp32"])
    assert f.status == FAIL and f.limit == ["BF16", "F32"]
    assert f.measured == {"BF16": 2, "F32": 1, "I64": 1}
    assert "1 of 4 tensors have dtypes not allowed: I64 ×1 (e.g. model.position_ids)" in f.message
    assert one(mixed, allow_dtypes=["BF16", "float32", "int64"]).status == PASS


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"dtype": "int8"}, "I8 is not a floating-point dtype"),
        ({"dtype": "nf4"}, "NF4 is not a dtype a safetensors header can hold"),
        ({"dtype": "bf17"}, "unknown dtype"),
        ({"allow_dtypes": ["bf16,q4_k_m"]}, "Q4_K_M is not a dtype a safetensors header can hold"),
        ({"allow_dtypes": [" , "]}, "give at least one dtype"),
    ],
)
def test_bad_dtypes(options, why):
    with pytest.raises(errors.UsageError, match=why):
        rules(**options)


# ---------------------------------------------------------------- anatomy and layers


def test_max_share_boundary_is_inclusive(tmp_path):
    p = make_checkpoint(
        tmp_path / "m.safetensors",
        {"model.layers.0.mlp.down_proj.weight": ("F32", (95,)), "vision_tower.proj": ("F32", (5,))},
    )
    f = one(p, max_share=["other=5%"])
    assert (f.name, f.status, f.measured, f.limit) == ("max_share:other", PASS, 0.05, 0.05)
    assert f.message == "other holds 5 of 100 parameters, within 5%"
    f = one(p, max_share=["other=4.99%"])
    assert f.status == FAIL and f.message == "other holds 5 of 100 parameters, over 4.99%"
    assert one(p, max_share=["feed-forward=0.95"]).status == PASS  # dashes, bare fraction


def test_max_share_of_several_categories(llama8b):
    report = check(llama8b, max_share=["other=0%", "embedding=5%"])
    assert [(f.name, f.status) for f in report.findings] == [
        ("max_share:other", PASS),
        ("max_share:embedding", FAIL),  # 2 x 128256 x 4096 = 13.1% of Llama-3.1-8B
    ]


def test_expect_layers(llama8b, tmp_path):
    f = one(llama8b, expect_layers="32")
    assert (f.status, f.measured, f.limit) == (PASS, 32, 32)
    f = one(llama8b, expect_layers="33")
    assert f.status == FAIL and "missing layer 32" in f.message
    layout = llama31_8b()
    lost = [t for t in layout.tensors if ".layers.17." not in t[0]]
    write_sparse_checkpoint(tmp_path, lost, shards=2)
    (tmp_path / "config.json").write_text('{"num_hidden_layers": 32}')
    f = one(tmp_path, expect_layers="32")
    assert f.status == FAIL and f.measured == 31
    assert f.message == "31 layers in the tensor names (missing layer 17; config.json says 32)"


# ---------------------------------------------------------------- metadata and pickles


def test_require_metadata_key_and_value(mixed):
    f = one(mixed, require_metadata=["format=pt"])
    assert (f.name, f.status, f.measured, f.limit) == ("require_metadata:format", PASS, "pt", "pt")
    f = one(mixed, require_metadata=["format=tf"])
    assert f.status == FAIL and f.measured == "pt" and "'format' is 'pt', not 'tf'" in f.message
    assert one(mixed, require_metadata=["format"]).status == PASS
    f = one(mixed, require_metadata=["license"])
    assert (f.status, f.measured, f.limit) == (
        FAIL,
        None,
        None,
    ) and "'license' missing from 1 of 1 file" in f.message


def test_require_metadata_in_every_file(tmp_path):
    a = make_checkpoint(tmp_path / "a.safetensors", {"x": ("F32", (2,))}, metadata={"format": "pt"})
    b = make_checkpoint(tmp_path / "b.safetensors", {"y": ("F32", (2,))})
    f = one([a, b], require_metadata=["format=pt"])
    assert f.status == FAIL and f"'format' missing from 1 of 2 files ({b})" in f.message


def test_safetensors_only(tmp_path):
    make_checkpoint(tmp_path, {"w": ("F32", (4,))})
    f = one(tmp_path, safetensors_only=True)
    assert (f.status, f.measured, f.limit) == (PASS, [], [])
    for name in ("pytorch_model.bin", "training_args.bin", "optimizer.pt"):
        (tmp_path / name).write_bytes(b"\x80\x04 not opened")
    f = one(tmp_path, safetensors_only=True)
    names = [str(tmp_path / n) for n in ("optimizer.pt", "pytorch_model.bin", "training_args.bin")]
    assert f.status == FAIL and f.measured == names
    assert "3 pickle files beside the safetensors" in f.message and "training_args.bin" in f.message
    # naming the file looks in its folder too
    assert one(tmp_path / "model.safetensors", safetensors_only=True).measured == names


def test_a_folder_of_a_truncated_pickle_is_an_error_not_a_finding(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(errors.HeaderError):
        check(tmp_path, safetensors_only=True)


def test_safetensors_only_is_unavailable_when_nobody_listed_the_files(mixed):
    ck = open_local([str(mixed)])
    unknown = Checkpoint(source=ck.source, files=ck.files)  # e.g. a source that cannot list files
    (f,) = evaluate(unknown, rules(safetensors_only=True)).findings
    assert f.status == UNAVAILABLE and not f.passed


# ---------------------------------------------------------------- unavailable rules


def test_value_rules_read_values_and_hash_files(mixed):
    import hashlib

    digest = hashlib.sha256(mixed.read_bytes()).hexdigest()
    report = check(mixed, no_nan=True, no_inf=True, sha256=[f"model.safetensors={digest}"],
                   max_params="1B")  # fmt: skip
    assert [(f.name, f.status) for f in report.findings] == [
        ("max_params", PASS),
        ("no_nan", PASS),
        ("no_inf", PASS),
        ("sha256:model.safetensors", PASS),
    ]
    assert report.findings[1].measured == 0 and report.findings[3].measured == digest
    wrong = check(mixed, sha256=["model.safetensors=" + "ab" * 32], no_nan=True)
    assert [f.status for f in wrong.findings] == [PASS, FAIL]
    missing = one(mixed, sha256=["other.safetensors=" + "ab" * 32])
    assert missing.status == FAIL and "no file 'other.safetensors'" in missing.message


def test_nan_and_inf_are_counted_and_named(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    x = np.zeros((3, 5), np.float32)
    x[0, 0] = x[2, 4] = np.nan
    x[1, 1] = np.inf
    p = tmp_path / "model.safetensors"
    save_file({"a.weight": x, "b.weight": np.ones(4, np.float32)}, p)
    report = check(p, no_nan=True, no_inf=True)
    nan, inf = report.findings
    assert (nan.status, nan.measured, inf.status, inf.measured) == (FAIL, 2, FAIL, 1)
    assert "a.weight" in nan.message and "b.weight" not in nan.message


def test_one_scan_per_evaluation_serves_nan_and_inf(mixed, monkeypatch):
    from paramtool.values import nonfinite

    scans = []
    real = nonfinite.scan_nonfinite
    monkeypatch.setattr(nonfinite, "scan_nonfinite", lambda ck: scans.append(ck) or real(ck))
    checkpoint = open_local([str(mixed)])
    both = rules(no_nan=True, no_inf=True)
    assert evaluate(checkpoint, both).passed and len(scans) == 1
    # nothing outlives the evaluation: the same checkpoint evaluated again is scanned again
    assert evaluate(checkpoint, both).passed and len(scans) == 2


def test_an_evaluator_can_be_plugged_in(mixed, monkeypatch):
    def no_nan(rule, ctx):
        return Finding(rule, PASS, 0, 0, "no NaN in 4 tensors", "0", "0")

    monkeypatch.setitem(EVALUATORS, "no_nan", EVALUATORS["no_nan"])
    register("no_nan", no_nan)
    report = check(mixed, no_nan=True)
    assert (
        report.passed
        and report.exit_code == 0
        and report.findings[0].message == "no NaN in 4 tensors"
    )
    with pytest.raises(ValueError):
        register("tolerance", no_nan)


# ---------------------------------------------------------------- parsing and merging


def test_rules_are_reported_in_a_fixed_order():
    names = [
        r.name
        for r in rules(
            safetensors_only=True,
            dtype="bf16",
            max_size="1GB",
            max_share=["other=5%"],
            expect_layers="2",
        )
    ]
    assert names == ["max_size", "dtype", "max_share:other", "expect_layers", "safetensors_only"]


def test_later_sets_win_rule_by_rule():
    config = parse_rules(
        {"max_size": "16GB", "max_share": ["other=5%", "adapter=1%"], "tolerance": "1%"}
    )
    cli = parse_rules({"max_size": "17GB", "max_share": ["other=10%"], "expect_params": "8B"})
    merged = {r.name: r for r in finalize([config, cli])}
    assert merged["max_size"].value == 17 * 10**9
    assert merged["max_share:other"].value == ("other", Fraction(1, 10))
    assert merged["max_share:adapter"].value == ("adapter", Fraction(1, 100))
    assert merged["expect_params"].value == (
        8 * 10**9,
        Fraction(1, 100),
    )  # tolerance from the config


def test_percentages_are_exact():
    (r,) = rules(max_share=["other=0.1%"])
    assert r.value == ("other", Fraction(1, 1000)) and r.text == "0.1%"
    (r,) = rules(expect_params="8B", tolerance="0.001")
    assert r.value == (8 * 10**9, Fraction(1, 1000))


@pytest.mark.parametrize(
    ("options", "what", "flag", "why"),
    [
        ({"max_size": "16XB"}, "max_size '16XB'", "--max-size '16XB'", "unknown suffix 'XB'"),
        ({"min_size": "-1GB"}, "min_size '-1GB'", "--min-size '-1GB'", "not a number"),
        ({"max_params": "lots"}, "max_params 'lots'", "--max-params 'lots'", "not a number"),
        ({"expect_params": "0"}, "expect_params '0'", "--expect-params '0'", "greater than zero"),
        (
            {"tolerance": "200%", "expect_params": "1B"},
            "tolerance '200%'",
            "--tolerance '200%'",
            "between 0% and 100%",
        ),
        ({"max_share": ["other"]}, "max_share 'other'", "--max-share 'other'", "CATEGORY=PERCENT"),
        (
            {"max_share": ["others=5%"]},
            "max_share 'others=5%'",
            "--max-share 'others=5%'",
            "unknown category 'others'",
        ),
        (
            {"max_share": ["other=5 percent"]},
            "max_share '5 percent'",
            "--max-share '5 percent'",
            "write it like 5%",
        ),
        ({"expect_layers": "3.5"}, "expect_layers '3.5'", "--expect-layers '3.5'", "whole number"),
        (
            {"require_metadata": ["=pt"]},
            "require_metadata '=pt'",
            "--require-metadata '=pt'",
            "KEY or KEY=VALUE",
        ),
        (
            {"sha256": ["model.safetensors=abc"]},
            "sha256 'model.safetensors=abc'",
            "--sha256 'model.safetensors=abc'",
            "64 hexadecimal",
        ),
        ({"sha256": ["deadbeef"]}, "sha256 'deadbeef'", "--sha256 'deadbeef'", "FILE=HEX"),
        (
            {"against_hub": "not a repo"},
            "against_hub 'not a repo'",
            "--against-hub 'not a repo'",
            "not a Hub repo",
        ),
    ],
)
def test_bad_values_name_the_option(options, what, flag, why):
    """A Python caller reads the parameter; the command line's error table spells the flag."""
    with pytest.raises(errors.UsageError) as e:
        rules(**options)
    assert e.value.what == what and why in e.value.why
    assert str(e.value).startswith(f"{what}: ")
    assert e.value.subject(cli_flag) == flag


def test_tolerance_needs_expect_params():
    with pytest.raises(errors.UsageError) as e:
        rules(tolerance="1%")
    assert str(e.value) == "tolerance '1%': only applies together with expect_params"
    assert e.value.message(cli_flag) == (
        "--tolerance '1%': only applies together with --expect-params"
    )


def test_percentages_are_read_exactly_and_never_hang():
    (r,) = rules(max_share=["other=1_0%"])
    assert r.value == ("other", Fraction(1, 10))
    for huge in ("1e999999999%", "inf", "1e41"):
        with pytest.raises(errors.UsageError, match="between 0% and 100%"):
            rules(max_share=[f"other={huge}"])
    for not_a_number in ("nan", "1/20", "x%", "1e-99999999%"):
        with pytest.raises(errors.UsageError, match="write it like 5% or 0.05"):
            rules(max_share=[f"other={not_a_number}"])


def test_min_above_max_can_never_pass():
    with pytest.raises(errors.UsageError, match="nothing can pass"):
        rules(min_size="2GB", max_size="1GB")
    with pytest.raises(errors.UsageError, match="nothing can pass"):
        rules(min_params="9B", max_params="8B")
    assert len(rules(min_size="1GB", max_size="1GB")) == 2


def test_no_rules_is_an_error():
    with pytest.raises(errors.UsageError, match="no rules given"):
        rules()
    with pytest.raises(errors.UsageError, match="no rules given"):
        rules(safetensors_only=False, max_share=[], max_size=None)


def test_config_errors_use_the_callers_label_and_class():
    with pytest.raises(errors.ConfigError) as e:
        parse_rules(
            {"max_size": "16XB"}, lambda k, t: f"paramtool.toml: {k} = {t!r}", errors.ConfigError
        )
    assert str(e.value).startswith("paramtool.toml: max_size = '16XB': unknown suffix")
