"""``paramtool.memory.fit``: the model as engines see it, the inverse solves, the fallback,
what shares the devices, and the JSON document.

Expected figures are worked by hand from the layouts' shapes (written out beside each) or
published counts; the engines' own accounting is tested in their own files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import layouts
import paramtool
from paramtool import dtypes
from paramtool.analysis.breakdown import build
from paramtool.api import open_checkpoint
from paramtool.errors import UsageError
from paramtool.memory.dims import ModelDims
from paramtool.memory.engines import ENGINES, get_engine
from paramtool.memory.engines.base import Device, EngineFit, ModelView, Request
from paramtool.memory.fit import fit, model_view, params_view
from paramtool.memory.search import largest, smallest

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "docs/schemas/fit.schema.json").read_text("utf-8")
)
GB = 10**9


def view_of(tmp_path: Path, layout: layouts.Layout, dtype: str | None = None) -> ModelView:
    layouts.write_sparse_checkpoint(tmp_path, layout, shards=1)
    b = build(open_checkpoint(str(tmp_path)))
    served = dtypes.lookup(dtype) if dtype else None
    return model_view(b, ModelDims.from_description(b.description), served)


def dense(params: int = 8 * GB, layers: int = 32, kv_heads: int = 8) -> ModelView:
    """A dense model from flags: bf16, 2 x layers x kv_heads x 128 x 2 bytes per token."""
    dims = ModelDims.from_description(
        None, layers=layers, heads=32, kv_heads=kv_heads, head_dim=128
    )
    return params_view(params, dims)


def gpu(size: int = 24 * GB, bandwidth: int | None = None) -> Device:
    return Device(f"custom {size // GB}GB", size, bandwidth)


# ---------------------------------------------------------------- the model


def test_llama31_8b_view_as_stored_and_at_fp8(tmp_path):
    m = view_of(tmp_path / "a", layouts.llama31_8b())
    assert m.parameters == 8_030_261_248  # the Hub's figure
    assert m.weights_bytes == 16_060_522_496  # bf16: 2 bytes each
    # per layer: q, o 4096x4096; k, v 1024x4096; gate/up/down 3 x 4096x14336; 2 norms
    # = 16,777,216 x 2 + 4,194,304 x 2 + 176,160,768 + 8,192 = 218,112,000 params
    assert m.layer_bytes == (436_224_000,) * 32
    assert m.embedding_bytes == m.output_bytes == 128256 * 4096 * 2 == 1_050_673_152
    assert m.other_bytes == 4096 * 2  # the final norm
    assert m.routed_expert_bytes == () and m.mtp_bytes == 0 and m.vision_bytes == 0
    # Read per token: all but the untied embedding table (one row of it is looked up).
    assert m.active_weights_bytes == 16_060_522_496 - 1_050_673_152
    assert m.active_parameters == m.parameters and m.format == "safetensors"
    fp8 = view_of(tmp_path / "b", layouts.llama31_8b(), "fp8")
    assert fp8.weights_bytes == 8_030_261_248 and fp8.layer_bytes[0] == 218_112_000
    assert fp8.weight_dtype is not None and fp8.weight_dtype.label == "fp8-e4m3"


def test_mixtral_view_routes_two_of_eight_experts(tmp_path):
    m = view_of(tmp_path, layouts.mixtral_8x7b())
    assert m.parameters == 46_702_792_704
    assert m.active_parameters == 12_879_925_248  # Mistral AI: "12.9B active"
    # 8 experts x (gate, up, down: 3 x 4096 x 14336) x 2 bytes, in each of 32 layers
    assert m.routed_expert_bytes == (8 * 3 * 4096 * 14336 * 2,) * 32 == (2_818_572_288,) * 32
    # attention 41,943,040 + router 8 x 4096 + experts 1,409,286,144 + norms 8,192, x 2 bytes
    assert m.layer_bytes == (2_902_540_288,) * 32
    # all, less the untied embedding (32000 x 4096 x 2), less 6/8 of the routed experts
    assert m.active_weights_bytes == 93_405_585_408 - 262_144_000 - 67_645_734_912


def test_deepseek_v3_view_leaves_the_mtp_head_out(tmp_path):
    m = view_of(tmp_path, layouts.deepseek_v3(fp8=False))
    assert len(m.layer_bytes) == 61  # model.layers.61 is the MTP part's
    # The MTP block: 13,463,426,304 parameters (the layout's count) at bf16, its router's
    # e_score_correction_bias (256) kept at f32: 2 more bytes each.
    assert m.mtp_bytes == 13_463_426_304 * 2 + 256 * 2
    # the main model's 671,026,419,200 at bf16 and 58 MoE layers' f32 biases
    assert m.weights_bytes == 671_026_419_200 * 2 + 58 * 256 * 2
    # 8 of 256 routed experts: 248 x (3 x 7168 x 2048) skipped in each of 58 layers
    assert m.active_parameters == 671_026_419_200 - 58 * 248 * 44_040_192 == 37_552_297_472
    assert sum(1 for x in m.routed_expert_bytes if x) == 58
    assert m.routed_expert_bytes[:3] == (0, 0, 0)  # first_k_dense_replace = 3
    bf16 = view_of(tmp_path / "b", layouts.deepseek_v3(fp8=False), "bf16")
    assert bf16.weights_bytes == 671_026_419_200 * 2
    assert bf16.mtp_bytes == 13_463_426_304 * 2


def test_vision_tower_is_loaded_but_not_read_per_token(tmp_path):
    lay = layouts.tiny_llama()
    extra = [
        ("vision_tower.blocks.0.attn.qkv.weight", "BF16", (96, 32)),
        ("multi_modal_projector.linear.weight", "BF16", (64, 32)),
    ]
    lay = replace(lay, tensors=lay.tensors + extra)
    m = view_of(tmp_path, lay)
    plain = view_of(tmp_path / "plain", layouts.tiny_llama())
    assert m.vision_bytes == (96 * 32 + 64 * 32) * 2 == 10_240
    assert m.weights_bytes == plain.weights_bytes + 10_240
    assert m.active_weights_bytes == plain.active_weights_bytes


def test_params_view_is_dense_and_split_by_layer():
    m = dense(8_000_000_001, layers=32)
    assert m.weights_bytes == 16_000_000_002 and m.active_weights_bytes == m.weights_bytes
    assert m.layer_bytes == (500_000_000,) * 32 and m.other_bytes == 2


# ---------------------------------------------------------------- the registry


def test_registry_names_and_lazy_engines():
    assert ENGINES == {
        "vllm": "vllm",
        "sglang": "sglang",
        "llama.cpp": "llamacpp",
        "transformers": "transformers",
        "generic": "generic",
    }
    assert get_engine("generic").name == "generic"
    assert get_engine("LlamaCPP").name == "llama.cpp" if _has("llamacpp") else True
    with pytest.raises(UsageError, match="vllm, sglang, llama.cpp, transformers, generic"):
        get_engine("tgi")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"paramtool.memory.engines.{module}") is not None


# ---------------------------------------------------------------- the generic estimate


def test_generic_plan_by_hand():
    # 8e9 bf16 = 16 GB; 20% = 3.2 GB; KV 2 x 32 x 8 x 128 x 2 = 131,072 B/token
    r = fit(dense(), Request((gpu(),), context=8192), "generic")
    d = r.devices[0]
    assert (d.weights_bytes, d.runtime_bytes, d.kv_cache_bytes) == (
        16 * GB,
        3_200_000_000,
        8192 * 131_072,
    )
    assert d.free_bytes == 24 * GB - 16 * GB - 3_200_000_000 - 1_073_741_824
    assert r.fits and r.engine == "generic" and not r.fallback
    # 4.8 GB of room / 131,072 B = 36,621.09 tokens; / 1,073,741,824 B = 4.47 sequences
    assert r.max_model_len == 36_621
    assert r.max_concurrency == pytest.approx(4.4703, abs=1e-4)
    assert r.solves.max_context == 36_621 and r.solves.max_batch == 4


def test_solves_more_gpus_and_tensor_parallel():
    # 70e9 bf16 = 140 GB + 28 GB overhead; KV 80 x 8 x 128 x 2 x 2 = 327,680 B/token.
    # n GPUs: (168 GB + KV/min(n, 8) x n ... ) / n per GPU; 4: 42 GB > 24; 8: 21.3 GB fits.
    big = dense(70 * GB, layers=80)
    r = fit(big, Request((gpu(),), context=8192), "generic")
    assert not r.fits and r.exit_code == 1 and r.why_not
    assert r.solves.gpus == 8 and "gpus" in r.solves.searched
    assert r.solves.max_context is None and r.solves.max_batch is None
    eight = fit(big, Request((gpu(),) * 8, context=8192, tensor_parallel=4), "generic")
    assert not eight.fits and eight.solves.tensor_parallel == 8


def test_batch_beyond_the_pool_does_not_fit():
    r = fit(dense(), Request((gpu(),), context=8192, batch=5), "generic")
    assert not r.fits  # 5 x 1,073,741,824 > 4.8 GB
    r = fit(dense(), Request((gpu(),), context=8192, batch=4), "generic")
    assert r.fits


def test_decode_bound_from_bandwidth():
    # 1 TB/s over 16 GB of weights + 1,073,741,824 B of KV at 8192 tokens
    r = fit(dense(), Request((gpu(bandwidth=10**12),), context=8192), "generic")
    assert r.decode_tokens_per_s_max == pytest.approx(58.569469, rel=1e-6)
    assert fit(dense(), Request((gpu(),), context=8192), "generic").decode_tokens_per_s_max is None


def test_llama_cpp_embeddings_in_ram_are_a_lookup_not_a_read(tmp_path: Path) -> None:
    # Llama-3.1-8B at bf16, every layer on one H100 SXM (3.35 TB/s); llama.cpp keeps the
    # 525,336,576-parameter token table in system RAM, of which a token reads one row.
    # Per token: (8,030,261,248 - 525,336,576) x 2 B of weights + 131,072 B x 8192 of KV.
    layouts.write_sparse_checkpoint(tmp_path, layouts.llama31_8b(), shards=1)
    r = paramtool.fit(str(tmp_path), gpu="h100-80gb", engine="llama.cpp", context=8192)
    assert r.ram.weights_bytes > 0
    assert r.decode_tokens_per_s_max == pytest.approx(
        3.35e12 / (7_504_924_672 * 2 + 131_072 * 8192), rel=1e-9
    )


def test_searches_are_bounded_and_exact():
    calls: list[int] = []

    def ok(n: int) -> bool:
        calls.append(n)
        return n <= 36_621

    assert largest(ok, 1, 2**24) == 36_621 and len(calls) <= 26
    assert smallest(lambda n: n >= 7, 0, 64) == 7
    assert largest(lambda n: False, 1, 10) is None and smallest(lambda n: False, 0, 9) is None


# ---------------------------------------------------------------- fallback and sharing


@dataclass(frozen=True)
class Refuses:
    name: str = "vllm"
    version_followed: str = "test"

    def supports(self, model: ModelView) -> str | None:
        return "no layer structure"

    def plan(self, model: ModelView, request: Request) -> EngineFit:
        raise AssertionError("never asked")


def test_an_engine_that_cannot_model_it_falls_back_and_says_so():
    r = fit(dense(), Request((gpu(),), context=8192), Refuses())
    assert r.fallback and r.engine == "generic" and r.requested_engine == "vllm"
    assert any("no layer structure" in n and "generic" in n for n in r.notes)
    doc = r.to_dict()
    assert doc["fallback"] is True and doc["engine"]["name"] == "generic"


def test_a_draft_model_shares_the_devices():
    alone = fit(dense(), Request((gpu(),), context=8192), "generic")
    draft = dense(1 * GB, layers=16, kv_heads=8)  # 2 GB, 65,536 B/token
    both = fit(dense(), Request((gpu(),), context=8192, draft=draft), "generic")
    a, b = alone.devices[0], both.devices[0]
    assert b.weights_bytes - a.weights_bytes == 2 * GB
    assert b.kv_cache_bytes - a.kv_cache_bytes == 8192 * 65_536
    assert b.runtime_bytes - a.runtime_bytes == 400_000_000  # 20% of the draft too
    assert both.to_dict()["request"]["draft"]["weights_bytes"] == 2 * GB


def test_the_mtp_head_is_off_by_default_and_said(tmp_path):
    m = view_of(tmp_path, layouts.deepseek_v3(fp8=False))
    r = fit(m, Request((gpu(200 * GB),) * 8, context=4096), "generic")
    assert any("MTP head" in n and "off by default" in n for n in r.notes)
    assert r.devices[0].weights_bytes == -(-m.weights_bytes // 8)


# ---------------------------------------------------------------- the API and JSON


def test_api_fit_from_params_matches_the_core_and_the_schema():
    r = paramtool.fit(
        params="8B", layers=32, heads=32, kv_heads=8, head_dim=128,
        gpu="24GB", engine="generic", context="8k",
    )  # fmt: skip
    assert isinstance(r, paramtool.Fit)
    assert (
        r.to_dict() == fit(dense(), Request(r.request.devices, context=8192), "generic").to_dict()
    )
    doc = r.to_dict()
    assert not list(Draft202012Validator(SCHEMA).iter_errors(doc))
    for key in ("engine", "devices", "ram", "kv_cache_bytes", "kv_cache_tokens",
                "max_model_len", "max_concurrency", "fits", "decode_tokens_per_s_max"):  # fmt: skip
        assert key in doc
    assert set(doc["devices"][0]) == {
        "name", "total_bytes", "budget_bytes", "weights_bytes", "activation_bytes",
        "runtime_bytes", "kv_cache_bytes", "free_bytes",
    }  # fmt: skip


def test_api_fit_refuses_bad_values():
    kw = {"params": "8B", "layers": 32, "kv_heads": 8, "head_dim": 128, "engine": "generic"}
    with pytest.raises(UsageError, match="gpu_memory_utilization"):
        paramtool.fit(gpu="24GB", gpu_memory_utilization=1.5, **kw)
    with pytest.raises(UsageError, match="kv_memory"):
        paramtool.fit(gpu="24GB", kv_memory="lots", **kw)
    with pytest.raises(UsageError, match="engine"):
        paramtool.fit(gpu="24GB", **{**kw, "engine": "tgi"})
    with pytest.raises(UsageError, match="params"):
        paramtool.fit(gpu="24GB")
    with pytest.raises(UsageError, match="tensor_parallel"):
        paramtool.fit(gpu="24GB", tensor_parallel=2, **kw)


def test_vllm_by_default_for_safetensors_and_llamacpp_for_gguf(tmp_path):
    pytest.importorskip("paramtool.memory.engines.vllm")
    pytest.importorskip("paramtool.memory.engines.llamacpp")
    import quant_layouts

    layouts.write_sparse_checkpoint(tmp_path / "st", layouts.llama31_8b(), shards=1)
    assert paramtool.fit(str(tmp_path / "st"), gpu="h100-80gb", context="8k").engine == "vllm"
    quant_layouts.write_gguf(tmp_path / "m.gguf", "dense")
    assert paramtool.fit(str(tmp_path / "m.gguf"), gpu="24GB").engine == "llama.cpp"


def test_the_mtp_head_loaded_on_vllm(tmp_path):
    # DeepSeek-V3 at bf16 with --mtp on vLLM (TP 8): the MTP part (13,463,426,304 parameters,
    # model.layers.61) is loaded less its own embed_tokens and shared_head.head (129280 x
    # 7168 = 926,679,040 each), which vLLM replaces by the target's (llm_base_proposer.py):
    # 11,610,068,224 x 2 bytes more; weights a GPU ceil((671,026,419,200 x 2 +
    # 23,220,136,448) / 8) = 170,659,121,856.
    m = view_of(tmp_path, layouts.deepseek_v3(fp8=False), "bf16")
    assert m.mtp_bytes == 13_463_426_304 * 2
    assert m.mtp_shared_bytes == 2 * 926_679_040 * 2
    devices = (gpu(200 * GB),) * 8
    r = fit(m, Request(devices, context=4096, kv_memory=10 * 2**30, mtp=True), "vllm")
    assert r.devices[0].weights_bytes == 170_659_121_856
    assert not any("off by default" in n for n in r.notes)
    # one more MLA layer: 62 x 576 x 2 bytes a token; 10 GiB // (16 x 1152) // 62 = 9395
    # blocks = 150,320 tokens (61 layers: 9549 blocks, 152,784)
    assert r.kv_cache_tokens == 150_320
    off = fit(m, Request(devices, context=4096, kv_memory=10 * 2**30), "vllm")
    assert off.kv_cache_tokens == 152_784
    assert any("off by default" in n for n in off.notes)
    doc = r.to_dict()
    assert doc["request"]["mtp"] is True
    assert not list(Draft202012Validator(SCHEMA).iter_errors(doc))


def test_mtp_without_a_head_is_refused_and_other_engines_say_so(tmp_path):
    with pytest.raises(UsageError, match="mtp"):
        fit(dense(), Request((gpu(),), context=8192, mtp=True), "vllm")
    m = view_of(tmp_path, layouts.deepseek_v3(fp8=False))
    r = fit(m, Request((gpu(200 * GB),) * 8, context=4096, mtp=True), "generic")
    assert any("does not load an MTP head" in n for n in r.notes)
