"""The footprint core against published figures, not against numbers copied from the code.

Sources of the expected values are named next to each test; configs are the
published ``config.json`` values of the named Hugging Face repos.
"""

from __future__ import annotations

from fractions import Fraction

import gguf
import pytest

from paramtool import dtypes
from paramtool.errors import UsageError
from paramtool.memory.dims import ModelDims
from paramtool.memory.estimate import estimate
from paramtool.memory.gpu_fit import fit_serving, fit_training
from paramtool.memory.gpus import GPUS, lookup_gpu
from paramtool.memory.kv_cache import kv_cache
from paramtool.memory.overhead import parse_overhead
from paramtool.memory.precisions import ALL_PRECISIONS, DEFAULT_PRECISIONS, precision_rows
from paramtool.memory.training import (
    activation_bytes,
    lora_parameters,
    parse_lora_targets,
    training,
)

GB = 10**9
GIB = 2**30

LLAMA31_8B = {
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "vocab_size": 128256, "tie_word_embeddings": False,
}  # fmt: skip
LLAMA31_70B = {**LLAMA31_8B, "hidden_size": 8192, "intermediate_size": 28672,
               "num_attention_heads": 64, "num_hidden_layers": 80}  # fmt: skip
LLAMA31_405B = {**LLAMA31_8B, "hidden_size": 16384, "intermediate_size": 53248,
                "num_attention_heads": 128, "num_hidden_layers": 126}  # fmt: skip
DEEPSEEK_V3 = {
    "model_type": "deepseek_v3", "hidden_size": 7168, "num_hidden_layers": 61,
    "num_attention_heads": 128, "num_key_value_heads": 128, "kv_lora_rank": 512,
    "q_lora_rank": 1536, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
    "n_routed_experts": 256, "n_shared_experts": 1, "moe_intermediate_size": 2048,
    "intermediate_size": 18432, "first_k_dense_replace": 3, "vocab_size": 129280,
}  # fmt: skip
MISTRAL_7B_V01 = {
    "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336,
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "sliding_window": 4096, "vocab_size": 32000,
}  # fmt: skip


def llama_parameters(c: dict) -> int:
    """Parameter count of a Llama config: embeddings, layers, final norm (untied head)."""
    h, i, layers, v = (
        c["hidden_size"],
        c["intermediate_size"],
        c["num_hidden_layers"],
        c["vocab_size"],
    )
    hd = h // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * hd
    layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h
    return 2 * v * h + layers * layer + h


# --------------------------------------------------------------------------- weights


def test_seventy_billion_at_the_plain_precisions() -> None:
    rows = {r.dtype.label: r.weights_bytes for r in precision_rows(70 * GB, ["all"])}
    assert rows["bf16"] == rows["fp16"] == 140_000_000_000  # "70B at bf16 = 140 GB"
    assert rows["fp32"] == rows["tf32"] == 280 * GB
    assert rows["int8"] == rows["fp8-e4m3"] == rows["fp8-e5m2"] == 70 * GB
    assert rows["int4"] == 35 * GB


def test_llama31_405b_at_bf16_is_811_7_gb() -> None:
    n = llama_parameters(LLAMA31_405B)
    assert n == 405_853_388_800  # the Hub's safetensors metadata for meta-llama/Llama-3.1-405B
    (row,) = precision_rows(n, ["bf16"])
    assert row.weights_bytes == 811_706_777_600
    assert round(row.weights_bytes / GB, 1) == 811.7


def test_llama3_8b_parameter_count_is_the_one_llama_cpp_uses() -> None:
    assert llama_parameters(LLAMA31_8B) == dtypes.LLAMA3_8B_PARAMETERS == 8_030_261_248


def test_default_rows_are_the_common_choices_once() -> None:
    labels = [r.dtype.label for r in precision_rows(1000)]
    assert len(labels) == len(set(labels)) == len(DEFAULT_PRECISIONS) == 9
    assert labels == [
        "fp32", "bf16", "fp8-e4m3", "int8", "int4-g128", "nf4", "Q8_0", "Q5_K_M", "Q4_K_M",
    ]  # fmt: skip


def test_dtype_all_covers_the_issue_list_once() -> None:
    labels = [r.dtype.label for r in precision_rows(1000, ["all"])]
    assert len(labels) == len(set(labels)) == len(ALL_PRECISIONS) == 28
    wanted = [
        "fp32", "tf32", "fp16", "bf16", "fp8-e4m3", "fp8-e5m2", "int8", "int4", "nf4", "fp4",
        "int4-g32", "int4-g64", "int4-g128", "int4-g32-zp", "int4-g64-zp", "int4-g128-zp",
        "MXFP4", "NVFP4", "Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_0", "Q3_K_M",
        "Q2_K", "IQ4_XS",
    ]  # fmt: skip
    assert set(wanted) <= set(labels)
    assert set(labels) >= {r.dtype.label for r in precision_rows(1000)}  # defaults included


@pytest.mark.parametrize("d", [d for d in dtypes.TABLE if d.gguf], ids=lambda d: d.name)
def test_every_gguf_type_matches_gguf_py_block_sizes(d: dtypes.DType) -> None:
    block, nbytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[d.name]]
    assert (d.block_size, d.bytes_per_block) == (block, nbytes)


def test_gguf_py_types_we_list_are_all_in_the_table() -> None:
    for qtype in gguf.GGML_QUANT_SIZES:
        assert dtypes.lookup(qtype.name).name == qtype.name


# llama.cpp tools/quantize/quantize.cpp QUANT_OPTIONS: file sizes in GiB for Llama-3-8B.
LLAMA_CPP_SIZES_GIB = {
    "Q3_K_S": "3.41", "Q3_K_M": "3.74", "Q3_K_L": "4.03", "Q4_K_S": "4.37", "Q4_K_M": "4.58",
    "Q5_K_S": "5.21", "Q5_K_M": "5.33",
}  # fmt: skip


@pytest.mark.parametrize(("name", "gib"), LLAMA_CPP_SIZES_GIB.items())
def test_file_mixes_match_llama_cpp_published_sizes(name: str, gib: str) -> None:
    d = dtypes.lookup(name)
    assert d.kind == dtypes.MIX
    published_bpw = Fraction(gib) * 2**30 * 8 / 8_030_261_248
    # three significant digits of GiB carry +-0.005 GiB, i.e. about +-0.0054 bpw
    assert abs(d.bits_exact - published_bpw) <= Fraction(55, 10_000)
    assert gib in d.note and "Llama-3-8B" in d.note
    # and the size it predicts for Llama-3-8B rounds back to the published figure
    assert f"{d.estimate_nbytes(8_030_261_248) / 2**30:.2f}" == gib


def test_mix_notes_state_their_effective_bpw() -> None:
    for name in ("Q5_K_M", "Q4_K_M", "Q3_K_M"):
        d = dtypes.lookup(name)
        assert f"{d.bits:.2f} bpw" in d.note


def test_block_formats_effective_bits() -> None:
    bits = {n: dtypes.lookup(n).bits for n in (
        "MXFP4", "NVFP4", "nf4", "fp4", "nf4-dq", "int4-g32", "int4-g64", "int4-g128",
        "int4-g32-zp", "int4-g64-zp", "int4-g128-zp", "Q8_0", "Q6_K", "Q4_0", "Q2_K", "IQ4_XS",
    )}  # fmt: skip
    assert bits["MXFP4"] == 4 + 8 / 32  # OCP MX v1.0: 32 E2M1 elements share an E8M0 scale
    assert bits["NVFP4"] == 4 + 8 / 16  # NVIDIA: 16 E2M1 elements share an E4M3 scale
    assert bits["nf4"] == bits["fp4"] == 4 + 32 / 64  # bitsandbytes: fp32 absmax per 64
    # QLoRA paper: double quantization brings the scale cost to 8/64 + 32/(64*256) = 0.127
    assert bits["nf4-dq"] == pytest.approx(4.127, abs=5e-4)
    assert bits["int4-g32"] == 4 + 16 / 32
    assert bits["int4-g64"] == 4 + 16 / 64
    assert bits["int4-g128"] == 4 + 16 / 128
    assert bits["int4-g32-zp"] == 4 + (16 + 4) / 32
    assert bits["int4-g64-zp"] == 4 + (16 + 4) / 64
    assert bits["int4-g128-zp"] == 4 + (16 + 4) / 128
    assert (bits["Q8_0"], bits["Q6_K"], bits["Q4_0"], bits["Q2_K"]) == (8.5, 6.5625, 4.5, 2.625)
    assert bits["IQ4_XS"] == 4.25  # "4.25 bpw non-linear quantization" (llama-quantize)


def test_dtype_lookup_is_by_alias_and_unknown_is_a_usage_error() -> None:
    assert dtypes.lookup("BF16") is dtypes.lookup("bfloat16") is dtypes.lookup(" bf16 ")
    assert dtypes.lookup("q4_k_m").name == "Q4_K_M"
    assert dtypes.lookup("Q4_K").kind == dtypes.BLOCK  # the tensor type, not the mix
    with pytest.raises(UsageError, match="unknown dtype"):
        dtypes.lookup("bf17")


# --------------------------------------------------------------------------- KV cache


def test_llama31_8b_kv_cache_at_128k_is_16_gib() -> None:
    kv = kv_cache(ModelDims.from_config(LLAMA31_8B), context=131_072, batch=1)
    assert kv.bytes == 17_179_869_184 == 16 * GIB
    assert kv.attention == "gqa"
    assert kv.bytes_per_token == 131_072  # 2 * 32 * 8 * 128 * 2


def test_hf_llama31_blog_kv_figures_at_128000_tokens() -> None:
    # huggingface.co/blog/llama31 (quoted in huggingface/blog#2345): fp16 KV cache at
    # "128k" = 128,000 tokens is 15.62 GB for 8B and 39.06 GB for 70B, in units of 2**30
    for cfg, gib in ((LLAMA31_8B, 15.62), (LLAMA31_70B, 39.06)):
        kv = kv_cache(ModelDims.from_config(cfg), context=128_000)
        assert round(kv.bytes / GIB, 2) == gib


def test_kv_cache_scales_with_batch_and_dtype() -> None:
    dims = ModelDims.from_config(LLAMA31_8B)
    base = kv_cache(dims, 8192).bytes
    assert kv_cache(dims, 8192, batch=4).bytes == 4 * base
    assert kv_cache(dims, 8192, dtype=dtypes.lookup("fp8")).bytes * 2 == base
    assert kv_cache(dims, 8192, dtype=dtypes.lookup("fp32")).bytes == 2 * base


def test_mqa_has_one_kv_head() -> None:
    # tiiuae/falcon-7b: multi_query true, 71 heads of 64
    dims = ModelDims.from_config(
        {"hidden_size": 4544, "n_head": 71, "n_layer": 32, "multi_query": True}
    )
    assert (dims.kv_heads, dims.head_dim, dims.attention) == (1, 64, "mqa")
    assert kv_cache(dims, 2048).bytes == 2 * 32 * 1 * 64 * 2048 * 2


def test_mha_without_a_kv_field_uses_every_head() -> None:
    dims = ModelDims.from_config({"hidden_size": 4096, "num_attention_heads": 32,
                                  "num_hidden_layers": 32})  # fmt: skip
    assert (dims.kv_heads, dims.head_dim, dims.attention) == (32, 128, "mha")


def test_explicit_head_dim_wins_over_hidden_over_heads() -> None:
    # mistralai/Mistral-Nemo-Base-2407: hidden 5120, 32 heads, head_dim 128 (not 160)
    dims = ModelDims.from_config({"hidden_size": 5120, "num_attention_heads": 32,
                                  "num_key_value_heads": 8, "head_dim": 128,
                                  "num_hidden_layers": 40})  # fmt: skip
    assert dims.head_dim == 128
    assert kv_cache(dims, 1).bytes == 2 * 40 * 8 * 128 * 2


def test_deepseek_mla_caches_the_latent_and_rope_key() -> None:
    dims = ModelDims.from_config(DEEPSEEK_V3)
    kv = kv_cache(dims, 4096)
    assert dims.attention == kv.attention == "mla"
    # DeepSeek-V2 paper, Table 1: (d_c + d_h^R) * l elements = 9/2 * d_h * l per token
    assert kv.elements_per_token_layer == 512 + 64 == 9 * 128 // 2
    assert kv.bytes == 576 * 61 * 4096 * 2
    assert kv.shards(8) == 1  # the latent is not split by tensor parallelism


def test_mistral_sliding_window_cuts_the_cache_8x_at_32k() -> None:
    # Mistral 7B paper, sec. 2: the rolling buffer "reduces the cache memory usage by 8x"
    # on a 32k-token sequence (window 4096)
    kv = kv_cache(ModelDims.from_config(MISTRAL_7B_V01), 32_768)
    assert kv.windows == ((4096, 32),)
    assert kv.full_context_bytes == 8 * kv.bytes
    assert kv_cache(ModelDims.from_config(MISTRAL_7B_V01), 4096).bytes == kv.bytes


def test_gemma2_alternates_local_and_global_layers() -> None:
    # google/gemma-2-9b: 42 layers, window 4096, every other layer global
    cfg = {"model_type": "gemma2", "hidden_size": 3584, "num_attention_heads": 16,
           "num_key_value_heads": 8, "head_dim": 256, "num_hidden_layers": 42,
           "sliding_window": 4096}  # fmt: skip
    kv = kv_cache(ModelDims.from_config(cfg), 8192)
    per = 2 * 8 * 256 * 2
    assert kv.bytes == per * (21 * 4096 + 21 * 8192)


def test_gemma3_text_config_and_five_to_one_pattern() -> None:
    # google/gemma-3-4b-it: the language model sits in text_config; Gemma 3 report:
    # five local (1024-token) layers for every global one
    cfg = {"model_type": "gemma3", "vision_config": {"hidden_size": 1152},
           "text_config": {"model_type": "gemma3_text", "hidden_size": 2560,
                           "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                           "num_hidden_layers": 34, "sliding_window": 1024,
                           "sliding_window_pattern": 6}}  # fmt: skip
    dims = ModelDims.from_config(cfg)
    assert (dims.layers, dims.kv_heads, dims.head_dim) == (34, 4, 256)
    assert dims.windows == ((1024, 29),)  # layers 5, 11, 17, 23, 29 are global
    kv = kv_cache(dims, 32_768)
    assert kv.bytes == 2 * 4 * 256 * 2 * (29 * 1024 + 5 * 32_768)


def test_layer_types_win_when_present() -> None:
    types = ["sliding_attention"] * 5 + ["full_attention"]
    dims = ModelDims.from_config({"hidden_size": 64, "num_attention_heads": 4,
                                  "num_hidden_layers": 6, "sliding_window": 16,
                                  "sliding_window_pattern": 2, "layer_types": types})  # fmt: skip
    assert dims.windows == ((16, 5),)


def test_qwen2_sliding_window_switched_off_is_ignored() -> None:
    # Qwen/Qwen2-7B: sliding_window 131072 but use_sliding_window false
    cfg = {"hidden_size": 3584, "num_attention_heads": 28, "num_key_value_heads": 4,
           "num_hidden_layers": 28, "sliding_window": 131072, "use_sliding_window": False,
           "max_window_layers": 28}  # fmt: skip
    dims = ModelDims.from_config(cfg)
    assert dims.windows == ()
    assert any("use_sliding_window" in n for n in dims.notes)


def test_flags_override_config_and_missing_dims_are_named() -> None:
    dims = ModelDims.from_config(LLAMA31_8B, layers=2, kv_heads=1)
    assert (dims.layers, dims.kv_heads, dims.head_dim) == (2, 1, 128)
    with pytest.raises(UsageError, match=r"layers \(layers\)"):
        kv_cache(ModelDims(), 1024)


def test_hostile_config_values_are_ignored() -> None:
    dims = ModelDims.from_config({"num_hidden_layers": "32", "hidden_size": -1,
                                  "num_attention_heads": True, "text_config": [1, 2]})  # fmt: skip
    assert (dims.layers, dims.hidden_size, dims.heads) == (None, None, None)


# --------------------------------------------------------------------------- serving, GPUs


def test_overhead_parsing() -> None:
    assert parse_overhead("20%").fraction == Fraction(1, 5)
    assert parse_overhead("0.1").fraction == Fraction(1, 10)
    assert parse_overhead("2GB").bytes_per_gpu == 2 * GB
    assert parse_overhead("1.5GiB").bytes_per_gpu == 3 * 2**29
    for bad in ("lots", "-5%", "inf%", "nan%", "20%%", ""):
        with pytest.raises(UsageError):
            parse_overhead(bad)


def test_serving_total_is_weights_plus_kv_plus_overhead() -> None:
    fp = estimate(8_030_261_248, dims=ModelDims.from_config(LLAMA31_8B), dtype_names=["bf16"],
                  context=131_072)  # fmt: skip
    (row,) = fp.rows
    assert row.precision.weights_bytes == 16_060_522_496
    assert row.kv_cache_bytes == 16 * GIB
    assert row.overhead_bytes == -(-16_060_522_496 // 5)  # 20% of the weights, rounded up
    assert row.total_bytes == 16_060_522_496 + 16 * GIB + 3_212_104_500


def test_gpu_table_has_the_issue_gpus_with_sources() -> None:
    keys = {g.key for g in GPUS}
    for k in ("t4", "l4", "a10g", "rtx3090", "rtx4090", "rtx5090", "a100-40gb", "a100-80gb",
              "h100-80gb", "h200", "b200", "mi300x"):  # fmt: skip
        assert k in keys
    for g in GPUS:
        assert g.marketed_source and g.usable_source
        if g.unified:  # Apple: the GPU working set, 2/3 or 3/4 of the RAM
            assert g.marketed_bytes * 2 // 3 <= g.usable_bytes < g.marketed_bytes
        else:
            assert 0.9 * g.marketed_bytes < g.usable_bytes <= g.marketed_bytes
    # Modal's nvidia-smi survey (modal-labs/modal-client#2797): 85520809984 bytes on H100
    assert lookup_gpu("h100-80gb").usable_bytes == 81559 * 2**20 == 85_520_809_984
    assert lookup_gpu("H100") is lookup_gpu("h100_80gb") is lookup_gpu("h100-sxm")
    with pytest.raises(UsageError, match="unknown GPU"):
        lookup_gpu("h1000")


def test_seventy_b_bf16_needs_two_h100s() -> None:
    h100 = lookup_gpu("h100-80gb")
    one = fit_serving(h100, 140 * GB, None, parse_overhead("20%"), gpus=1)
    assert not one.fits and one.gpus_needed == 2
    assert one.per_gpu_bytes == 168 * GB
    two = fit_serving(h100, 140 * GB, None, parse_overhead("20%"))
    assert two.fits and two.gpus == 2
    assert two.per_gpu_bytes == 84 * GB and two.headroom_bytes == 85_520_809_984 - 84 * GB


def test_tensor_parallel_replicates_kv_heads_past_their_count() -> None:
    kv = kv_cache(ModelDims.from_config(LLAMA31_405B), 8192)
    assert kv.per_gpu_bytes(8) == kv.bytes // 8
    assert kv.per_gpu_bytes(16) == kv.bytes // 8  # 8 KV heads: GPUs 9..16 hold copies


def test_fixed_overhead_is_per_gpu() -> None:
    h100 = lookup_gpu("h100")
    fit = fit_serving(h100, 100 * GB, None, parse_overhead("2GB"), gpus=2)
    assert fit.per_gpu_bytes == 50 * GB + 2 * GB


def test_nothing_fits_when_the_kv_cache_alone_is_too_big() -> None:
    kv = kv_cache(ModelDims.from_config(DEEPSEEK_V3), 10_000_000, batch=64)
    fit = fit_serving(lookup_gpu("t4"), GB, kv, parse_overhead("20%"))
    assert not fit.fits and fit.gpus_needed is None and fit.limited_by


# --------------------------------------------------------------------------- training


def test_mixed_precision_adamw_is_16_bytes_per_parameter() -> None:
    t = training(7_000_000_000, "full")
    assert t.bytes_per_trainable_parameter == 16  # ZeRO paper sec. 3.1; Transformer Math 101
    assert t.states_bytes == 16 * 7_000_000_000
    assert (t.weights_bytes, t.gradients_bytes, t.master_bytes, t.optimizer_bytes) == (
        14 * GB, 14 * GB, 28 * GB, 56 * GB,
    )  # fmt: skip


def test_transformer_math_101_optimizer_figures() -> None:
    # EleutherAI, Transformer Math 101: optimizer memory incl. the fp32 copy is 12 (AdamW),
    # 6 (bitsandbytes 8-bit) and 8 (SGD with momentum) bytes/param, plus 2 + 2 for the
    # bf16 weights and gradients
    for opt, per in (("adamw", 16), ("adamw8bit", 10), ("sgd", 12)):
        assert training(1000, "full", optimizer=opt).bytes_per_trainable_parameter == per
    pure = training(1000, "full", dtype=dtypes.lookup("fp32"))
    assert pure.master_bytes == 0 and pure.bytes_per_trainable_parameter == 16


@pytest.mark.parametrize(("stage", "gb"), [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_paper_figure_1(stage: int, gb: float) -> None:
    # Rajbhandari et al. 2020, Figure 1: 7.5B parameters, 64 GPUs, K = 12
    t = training(7_500_000_000, "full", zero=stage, gpus=64)
    assert round(t.per_gpu_bytes() / GB, 1) == gb


def test_full_fine_tuning_refuses_a_quantized_dtype() -> None:
    with pytest.raises(UsageError, match="qlora"):
        training(1000, "full", dtype=dtypes.lookup("nf4"))


def test_lora_parameter_counts_match_peft() -> None:
    # PEFT print_trainable_parameters() on Llama-2-7B, r=8, q_proj+v_proj: 4,194,304
    llama2_7b = ModelDims.from_config(
        {"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32}
    )
    assert lora_parameters(llama2_7b, 8, parse_lora_targets("qv")) == 4_194_304
    # Llama-3-8B, all linear layers: 41,943,040 at r=16 and 167,772,160 at r=64
    dims = ModelDims.from_config(LLAMA31_8B)
    assert lora_parameters(dims, 16, parse_lora_targets("all-linear")) == 41_943_040
    assert (
        lora_parameters(dims, 64, parse_lora_targets("q_proj,k_proj,v_proj,o_proj,gate,up,down"))
        == 167_772_160
    )


def test_lora_targets_parse() -> None:
    assert parse_lora_targets("attention") == ("q", "k", "v", "o")
    assert parse_lora_targets("v,q") == ("q", "v")
    with pytest.raises(UsageError):
        parse_lora_targets("q,lm_head")


def test_lora_and_qlora_memory() -> None:
    dims = ModelDims.from_config(LLAMA31_8B)
    n = 8_030_261_248
    lora = training(n, "lora", dims=dims)
    assert lora.trainable_parameters == 41_943_040 and lora.frozen_parameters == n
    # frozen bf16 base, fp32 adapters (PEFT autocast_adapter_dtype) + grads + AdamW states
    assert lora.weights_bytes == 2 * n + 4 * 41_943_040
    assert lora.gradients_bytes == 4 * 41_943_040 and lora.master_bytes == 0
    assert lora.optimizer_bytes == 8 * 41_943_040
    qlora = training(n, "qlora", dims=dims)
    emb = 2 * 128256 * 4096  # embed_tokens + lm_head stay bf16 under bitsandbytes
    nf4 = dtypes.lookup("nf4")
    assert qlora.dtype is nf4
    assert qlora.weights_bytes == nf4.estimate_nbytes(n - emb) + 2 * emb + 4 * 41_943_040
    with pytest.raises(UsageError, match="intermediate-size"):
        training(n, "lora", dims=ModelDims.from_config({**LLAMA31_8B, "intermediate_size": None}))


def test_deepseek_mla_lora_uses_its_projections() -> None:
    dims = ModelDims.from_config(DEEPSEEK_V3)
    r = 1
    per_layer = (
        (7168 + 1536) + (1536 + 128 * 192) + (7168 + 576) + (512 + 128 * 256) + (128 * 128 + 7168)
    )
    assert lora_parameters(dims, r, ("q", "k", "v", "o")) == 61 * per_layer
    mlp = lora_parameters(dims, r, ("gate", "up", "down"))
    moe = 256 * 3 * (7168 + 2048) + 3 * (7168 + 2048)  # routed + one shared expert
    assert mlp == 58 * moe + 3 * 3 * (7168 + 18432)


def test_activations_follow_korthikanti() -> None:
    # Korthikanti et al. 2022, eq. 1: s*b*h*(34 + 5*a*s/h) bytes per layer; GPT-3 175B shape
    dims = ModelDims(layers=96, hidden_size=12288, heads=96)
    s, b, h, a = 2048, 1, 12288, 96
    assert activation_bytes(dims, "full", s, b) == 96 * s * b * h * (34 + 5 * a * s // h)
    assert activation_bytes(dims, "flash", s, b) == 96 * 34 * s * b * h
    assert activation_bytes(dims, "recompute", s, b) == 96 * 2 * s * b * h


def test_training_fit_needs_zero_to_scale() -> None:
    a100 = lookup_gpu("a100-80gb")
    t0 = training(8_030_261_248, "full")
    assert fit_training(a100, t0).gpus_needed is None  # ZeRO-0 replicates all 128 GB
    t3 = training(8_030_261_248, "full", zero=3)
    fit = fit_training(a100, t3)
    assert fit.fits and fit.gpus_needed == 2


def test_estimate_rejects_inconsistent_options() -> None:
    with pytest.raises(UsageError):
        estimate(1000, zero=3)
    with pytest.raises(UsageError):
        estimate(1000, activations="flash")
    with pytest.raises(UsageError):
        estimate(0)
    with pytest.raises(UsageError):
        estimate(1000, gpus=0)
    with pytest.raises(UsageError, match="context"):
        estimate(1000, train="full", activations="flash", dims=ModelDims.from_config(LLAMA31_8B))


def test_estimate_with_train_finds_the_gpu_count_and_splits_there() -> None:
    fp = estimate(8_030_261_248, train="full", zero=3, gpu=lookup_gpu("a100-80gb"))
    assert fp.training is not None and fp.training_fit is not None
    assert fp.training.gpus == fp.training_fit.gpus == 2
    assert fp.training.per_gpu_bytes() == fp.training_fit.per_gpu_bytes


# --------------------------------------------------------------------------- layering


def test_kimi_linear_layers_from_linear_attn_config() -> None:
    # moonshotai/Kimi-Linear-48B-A3B's config shape: KDA layers listed 1-indexed in
    # linear_attn_config, MLA on the rest. Per KDA layer (KimiDeltaAttention): short convs
    # over q, k and v (3 x 32 heads x 128 x kernel 4) and a 128 x 128 state per head.
    kda = [i for i in range(1, 28) if i % 4]
    cfg = {"model_type": "kimi_linear", "hidden_size": 2304, "num_hidden_layers": 27,
           "num_attention_heads": 32, "num_key_value_heads": 32, "kv_lora_rank": 512,
           "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
           "linear_attn_config": {"kda_layers": kda, "full_attn_layers": [4, 8, 12, 16, 20, 24],
                                  "num_heads": 32, "head_dim": 128,
                                  "short_conv_kernel_size": 4}}  # fmt: skip
    kv = kv_cache(ModelDims.from_config(cfg), 1000)
    assert kv.layers == 6
    assert kv.state_bytes == 21 * (3 * 32 * 128 * 4 + 32 * 128 * 128) * 2
    assert kv.bytes - kv.state_bytes == 6 * (512 + 64) * 1000 * 2


def test_gemma4_global_layers_use_global_head_dim() -> None:
    # Gemma4TextConfig: full-attention layers get global_head_dim (default 512) and the
    # last num_kv_shared_layers layers reuse the K/V of the last earlier layer of their kind.
    types = ["sliding_attention"] * 5 + ["full_attention"]
    cfg = {"model_type": "gemma4_text", "hidden_size": 64, "num_attention_heads": 4,
           "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 12,
           "sliding_window": 8, "layer_types": types * 2, "num_kv_shared_layers": 6}  # fmt: skip
    kv = kv_cache(ModelDims.from_config(cfg), 100)
    assert kv.layers == 6  # layers 6-11 share
    assert kv.bytes == 2 * 2 * 2 * (5 * 16 * 8 + 1 * 512 * 100)


def test_minimax_lightning_layers_keep_a_state() -> None:
    # MiniMaxConfig: lightning (linear) attention on odd layers, a head_dim x head_dim state
    # per head (MiniMaxLightningAttention), softmax attention on even layers.
    cfg = {"model_type": "minimax", "hidden_size": 6144, "num_attention_heads": 64,
           "num_key_value_heads": 8, "head_dim": 128, "num_hidden_layers": 4}  # fmt: skip
    kv = kv_cache(ModelDims.from_config(cfg), 10)
    assert kv.layers == 2
    assert kv.state_bytes == 2 * 64 * 128 * 128 * 2
    assert kv.bytes - kv.state_bytes == 2 * 2 * 8 * 128 * 10 * 2
