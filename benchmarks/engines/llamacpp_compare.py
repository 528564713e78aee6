"""Compare paramtool's llama.cpp accounting with llama.cpp's own load log, on CPU.

Writes tiny GGUF files with the ``gguf`` package (a dense Llama, a Mixtral-style MoE, a
Gemma-2-style sliding-window model, a DeepSeek-V2-style MLA model, an LFM2 hybrid of short
convolutions and attention, a Mamba), loads each with llama.cpp through llama-cpp-python
(``Llama(model_path, n_ctx, n_gpu_layers=0, verbose=True)``) in a subprocess, parses the
model, KV, recurrent-state (RS) and compute buffer sizes from its stderr, runs paramtool's
llama.cpp engine for the same settings (no GPU) and prints the differences. Not part of
the test run:

    python benchmarks/engines/llamacpp_compare.py [--python /tmp/lcpvenv/bin/python]

``--python`` is an interpreter with llama-cpp-python installed (its own venv; it needs
nothing else). This interpreter needs ``gguf``, ``numpy`` and paramtool.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from paramtool.analysis.model import describe
from paramtool.memory.dims import ModelDims
from paramtool.memory.engines.base import ModelView, Request
from paramtool.memory.engines.llamacpp import ENGINE

MIB = 1 << 20
EMBD, HEADS, KV_HEADS, HEAD_DIM, FF, LAYERS, VOCAB, CTX_TRAIN = 256, 4, 2, 64, 512, 4, 2048, 8192
# DeepSeek-V2-style MLA: q/kv LoRA ranks, the RoPE and no-RoPE parts of a key head, V head,
# 1 leading dense layer, then 4 routed experts (2 used) of width 128 and 1 shared expert.
Q_LORA, KV_LORA, ROPE, NOPE, V_HEAD, EXP_FF, DENSE_LEAD = 64, 64, 16, 32, 32, 128, 1
# LFM2: short convolutions with a 3-wide kernel; layer 2 is attention, the rest convolutions.
L_CACHE, LFM2_ATTN = 3, (2,)
# Mamba (1): d_inner = 2 x n_embd, 16 states, a 4-wide convolution, dt rank 16.
D_INNER, D_STATE, D_CONV, DT_RANK = 2 * EMBD, 16, 4, 16


@dataclass(frozen=True)
class Case:
    name: str
    arch: str  # llama | gemma2 | deepseek2 | lfm2 | mamba
    experts: int = 0
    window: int | None = None
    n_ctx: int = 4096
    flash: bool = False


CASES = (
    Case("dense", "llama"),
    Case("dense, -fa on", "llama", flash=True),
    Case("dense, n_ctx 1000", "llama", n_ctx=1000),
    Case("dense, n_ctx 512", "llama", n_ctx=512),
    Case("MoE 4x2", "llama", experts=4),
    Case("SWA (Gemma 2, W=256)", "gemma2", window=256),
    Case("SWA, -fa on", "gemma2", window=256, flash=True),
    Case("MLA (DeepSeek-V2)", "deepseek2", experts=4),
    Case("MLA, -fa on", "deepseek2", experts=4, flash=True),
    Case("hybrid (LFM2)", "lfm2"),
    Case("hybrid, n_ctx 8192", "lfm2", n_ctx=8192),
    Case("recurrent (Mamba)", "mamba"),
    Case("Mamba, n_ctx 512", "mamba", n_ctx=512),
)


def _vocab(w: gguf.GGUFWriter) -> None:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"tok{i}" for i in range(VOCAB - len(tokens))]
    types = [2, 3, 3] + [6] * 256 + [1] * (VOCAB - 259)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


def _hparams(case: Case, w: gguf.GGUFWriter) -> None:
    w.add_context_length(CTX_TRAIN)
    w.add_embedding_length(EMBD)
    w.add_block_count(LAYERS)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(1)
    if case.arch == "mamba":  # src/models/mamba.cpp: load_arch_hparams
        w.add_feed_forward_length(0)
        w.add_head_count(0)
        w.add_head_count_kv(0)
        w.add_ssm_conv_kernel(D_CONV)
        w.add_ssm_inner_size(D_INNER)
        w.add_ssm_state_size(D_STATE)
        w.add_ssm_time_step_rank(DT_RANK)
        return
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    if case.arch == "deepseek2":  # src/models/deepseek2.cpp, as convert_hf_to_gguf.py writes
        w.add_head_count_kv(1)  # MLA: one latent "head"
        w.add_key_length(KV_LORA + ROPE)
        w.add_value_length(KV_LORA)
        w.add_key_length_mla(NOPE + ROPE)
        w.add_value_length_mla(V_HEAD)
        w.add_rope_dimension_count(ROPE)
        w.add_q_lora_rank(Q_LORA)
        w.add_kv_lora_rank(KV_LORA)
        w.add_leading_dense_block_count(DENSE_LEAD)
        w.add_expert_feed_forward_length(EXP_FF)
        w.add_expert_shared_count(1)
        w.add_expert_weights_scale(1.0)
    elif case.arch == "lfm2":  # src/models/lfm2.cpp: n_head_kv(il) == 0 marks a conv layer
        w.add_head_count_kv([KV_HEADS if i in LFM2_ATTN else 0 for i in range(LAYERS)])
        w.add_shortconv_l_cache(L_CACHE)
        w.add_rope_dimension_count(HEAD_DIM)
    else:
        w.add_head_count_kv(KV_HEADS)
        w.add_key_length(HEAD_DIM)
        w.add_value_length(HEAD_DIM)
        w.add_rope_dimension_count(HEAD_DIM)
    if case.experts:
        w.add_expert_count(case.experts)
        w.add_expert_used_count(2)
    if case.window:
        w.add_sliding_window(case.window)
        w.add_attn_logit_softcapping(50.0)
        w.add_final_logit_softcapping(30.0)


def write_gguf(case: Case, path: Path) -> dict[str, int]:
    """The file, and the bytes of each tensor as written (numpy shapes are ggml's reversed)."""
    w = gguf.GGUFWriter(str(path), case.arch)
    _hparams(case, w)
    _vocab(w)
    sizes: dict[str, int] = {}
    rng = np.random.default_rng(0)

    def t(name: str, *shape: int, f32: bool = False) -> None:
        a = (rng.standard_normal(shape) * 0.02).astype(np.float32 if f32 else np.float16)
        w.add_tensor(name, a)
        sizes[name] = a.nbytes

    def glu(p: str, ff: int, suffix: str = "") -> None:
        t(f"{p}.ffn_gate{suffix}.weight", ff, EMBD)
        t(f"{p}.ffn_up{suffix}.weight", ff, EMBD)
        t(f"{p}.ffn_down{suffix}.weight", EMBD, ff)

    t("token_embd.weight", VOCAB, EMBD)
    for i in range(LAYERS):
        p = f"blk.{i}"
        t(f"{p}.attn_norm.weight", EMBD, f32=True)
        if case.arch == "mamba":  # src/models/mamba.cpp: load_arch_tensors
            t(f"{p}.ssm_in.weight", 2 * D_INNER, EMBD)
            t(f"{p}.ssm_conv1d.weight", D_INNER, D_CONV, f32=True)
            t(f"{p}.ssm_conv1d.bias", D_INNER, f32=True)
            t(f"{p}.ssm_x.weight", DT_RANK + 2 * D_STATE, D_INNER)
            t(f"{p}.ssm_dt.weight", D_INNER, DT_RANK)
            t(f"{p}.ssm_dt.bias", D_INNER, f32=True)
            t(f"{p}.ssm_a", D_INNER, D_STATE, f32=True)
            t(f"{p}.ssm_d", D_INNER, f32=True)
            t(f"{p}.ssm_out.weight", EMBD, D_INNER)
            continue
        t(f"{p}.ffn_norm.weight", EMBD, f32=True)
        if case.arch == "deepseek2":  # src/models/deepseek2.cpp: load_arch_tensors (is_mla)
            t(f"{p}.attn_q_a_norm.weight", Q_LORA, f32=True)
            t(f"{p}.attn_kv_a_norm.weight", KV_LORA, f32=True)
            t(f"{p}.attn_q_a.weight", Q_LORA, EMBD)
            t(f"{p}.attn_q_b.weight", HEADS * (NOPE + ROPE), Q_LORA)
            t(f"{p}.attn_kv_a_mqa.weight", KV_LORA + ROPE, EMBD)
            t(f"{p}.attn_k_b.weight", HEADS, KV_LORA, NOPE)
            t(f"{p}.attn_v_b.weight", HEADS, V_HEAD, KV_LORA)
            t(f"{p}.attn_output.weight", EMBD, HEADS * V_HEAD)
            if i < DENSE_LEAD:
                glu(p, FF)
            else:
                t(f"{p}.ffn_gate_inp.weight", case.experts, EMBD, f32=True)
                t(f"{p}.ffn_gate_exps.weight", case.experts, EXP_FF, EMBD)
                t(f"{p}.ffn_up_exps.weight", case.experts, EXP_FF, EMBD)
                t(f"{p}.ffn_down_exps.weight", case.experts, EMBD, EXP_FF)
                glu(p, EXP_FF, "_shexp")
            continue
        if case.arch == "lfm2":  # src/models/lfm2.cpp: load_arch_tensors
            glu(p, FF)
            if i in LFM2_ATTN:
                t(f"{p}.attn_q_norm.weight", HEAD_DIM, f32=True)
                t(f"{p}.attn_k_norm.weight", HEAD_DIM, f32=True)
                t(f"{p}.attn_q.weight", HEADS * HEAD_DIM, EMBD)
                t(f"{p}.attn_k.weight", KV_HEADS * HEAD_DIM, EMBD)
                t(f"{p}.attn_v.weight", KV_HEADS * HEAD_DIM, EMBD)
                t(f"{p}.attn_output.weight", EMBD, EMBD)
            else:
                t(f"{p}.shortconv.conv.weight", EMBD, L_CACHE, f32=True)
                t(f"{p}.shortconv.in_proj.weight", 3 * EMBD, EMBD)
                t(f"{p}.shortconv.out_proj.weight", EMBD, EMBD)
            continue
        t(f"{p}.attn_q.weight", HEADS * HEAD_DIM, EMBD)
        t(f"{p}.attn_k.weight", KV_HEADS * HEAD_DIM, EMBD)
        t(f"{p}.attn_v.weight", KV_HEADS * HEAD_DIM, EMBD)
        t(f"{p}.attn_output.weight", EMBD, HEADS * HEAD_DIM)
        if case.arch == "gemma2":
            t(f"{p}.post_attention_norm.weight", EMBD, f32=True)
            t(f"{p}.post_ffw_norm.weight", EMBD, f32=True)
        if case.experts:
            t(f"{p}.ffn_gate_inp.weight", case.experts, EMBD, f32=True)
            t(f"{p}.ffn_gate_exps.weight", case.experts, FF, EMBD)
            t(f"{p}.ffn_up_exps.weight", case.experts, FF, EMBD)
            t(f"{p}.ffn_down_exps.weight", case.experts, EMBD, FF)
        else:
            glu(p, FF)
    # LFM2's final norm is named token_embd_norm (LLM_TENSOR_OUTPUT_NORM_LFM2)
    t("token_embd_norm.weight" if case.arch == "lfm2" else "output_norm.weight", EMBD, f32=True)
    if case.arch not in ("gemma2", "lfm2"):
        t("output.weight", VOCAB, EMBD)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return sizes


def _config(case: Case) -> dict[str, Any]:
    """The transformers config.json the GGUF would have been converted from."""
    base: dict[str, Any] = {
        "hidden_size": EMBD, "num_hidden_layers": LAYERS, "vocab_size": VOCAB,
        "max_position_embeddings": CTX_TRAIN,
    }  # fmt: skip
    if case.arch == "mamba":
        return base | {
            "architectures": ["MambaForCausalLM"], "model_type": "mamba",
            "intermediate_size": D_INNER, "state_size": D_STATE, "conv_kernel": D_CONV,
            "expand": 2, "time_step_rank": DT_RANK, "tie_word_embeddings": False,
        }  # fmt: skip
    base |= {"num_attention_heads": HEADS, "intermediate_size": FF}
    if case.arch == "deepseek2":
        return base | {
            "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2",
            "num_key_value_heads": HEADS, "q_lora_rank": Q_LORA, "kv_lora_rank": KV_LORA,
            "qk_rope_head_dim": ROPE, "qk_nope_head_dim": NOPE, "v_head_dim": V_HEAD,
            "n_routed_experts": case.experts, "num_experts_per_tok": 2,
            "n_shared_experts": 1, "moe_intermediate_size": EXP_FF,
            "first_k_dense_replace": DENSE_LEAD, "moe_layer_freq": 1,
            "tie_word_embeddings": False,
        }  # fmt: skip
    base |= {"num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM}
    if case.arch == "lfm2":
        return base | {
            "architectures": ["Lfm2ForCausalLM"], "model_type": "lfm2",
            "conv_L_cache": L_CACHE, "block_auto_adjust_ff_dim": False,
            "layer_types": ["full_attention" if i in LFM2_ATTN else "conv"
                            for i in range(LAYERS)],
            "tie_word_embeddings": True,
        }  # fmt: skip
    if case.arch == "gemma2":
        return base | {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2",
                       "sliding_window": case.window, "tie_word_embeddings": True}  # fmt: skip
    if case.experts:
        return base | {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
                       "num_local_experts": case.experts, "num_experts_per_tok": 2,
                       "tie_word_embeddings": False}  # fmt: skip
    return base | {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                   "tie_word_embeddings": False}  # fmt: skip


def model_view(case: Case, sizes: dict[str, int]) -> ModelView:
    dims = ModelDims.from_description(describe(_config(case)))
    layer = [sum(v for k, v in sizes.items() if k.startswith(f"blk.{i}.")) for i in range(LAYERS)]
    experts = [
        sum(v for k, v in sizes.items() if k.startswith(f"blk.{i}.") and "_exps" in k)
        for i in range(LAYERS)
    ]
    total = sum(sizes.values())
    embd, out = sizes["token_embd.weight"], sizes.get("output.weight", 0)
    return ModelView(
        dims=dims, parameters=0, active_parameters=0, weights_bytes=total,
        active_weights_bytes=total, layer_bytes=tuple(layer),
        embedding_bytes=embd, output_bytes=out, other_bytes=total - sum(layer) - embd - out,
        routed_expert_bytes=tuple(experts), format="gguf", name=case.name,
    )  # fmt: skip


RUNNER = """
import sys
from llama_cpp import Llama
Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_gpu_layers=0, n_batch=2048,
      n_ubatch=512, flash_attn=sys.argv[3] == "1", swa_full=False, verbose=True)
"""
_LINE = re.compile(r"(\S+)\s+(model|KV|RS|compute|output) buffer size =\s+([\d.]+) MiB")
# llama_memory_recurrent: size = ... MiB (... cells, ... layers, ...), R (f32): x MiB, S ...
_RS = re.compile(r"llama_memory_recurrent: size = .*R \((\w+)\):\s+([\d.]+) MiB, S \((\w+)\):\s+"
                 r"([\d.]+) MiB")  # fmt: skip


def run_llamacpp(python: str, path: Path, case: Case) -> tuple[dict[str, float], str | None]:
    """MiB per kind of buffer (model, KV, RS, compute, output), summed over the log's lines,
    and the recurrent memory's R / S split as logged."""
    proc = subprocess.run(
        [python, "-c", RUNNER, str(path), str(case.n_ctx), "1" if case.flash else "0"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    out: dict[str, float] = {}
    for m in _LINE.finditer(proc.stderr):
        out[m.group(2)] = out.get(m.group(2), 0.0) + float(m.group(3))
    if proc.returncode or "model" not in out:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise SystemExit(f"llama.cpp failed on {case.name} (rc {proc.returncode}):\n{tail}")
    rs = _RS.search(proc.stderr)
    split = f"R ({rs[1]}) {rs[2]} MiB, S ({rs[3]}) {rs[4]} MiB" if rs else None
    return out, split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default="/tmp/lcpvenv/bin/python")
    args = ap.parse_args()
    rows = []
    splits = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            path = Path(tmp) / f"{case.arch}-{case.experts}-{case.window}.gguf"
            sizes = write_gguf(case, path)
            got, split = run_llamacpp(args.python, path, case)
            fit = ENGINE.plan(
                model_view(case, sizes),
                Request(devices=(), context=case.n_ctx, gpu_layers=0,
                        flash_attention=case.flash),
            )  # fmt: skip
            ours = {
                "model": fit.ram.weights_bytes / MIB,
                "KV+RS": fit.ram.kv_cache_bytes / MIB,
                "compute+output": fit.ram.activation_bytes / MIB,
            }
            theirs = {
                "model": got.get("model", 0.0),
                "KV+RS": got.get("KV", 0.0) + got.get("RS", 0.0),
                "compute+output": got.get("compute", 0.0) + got.get("output", 0.0),
            }
            for kind in ours:
                rows.append((case.name, kind, theirs[kind], ours[kind]))
            if split:
                splits.append(f"{case.name}: KV {got.get('KV', 0.0):.2f} MiB; "
                              f"RS {got.get('RS', 0.0):.2f} MiB = {split}")  # fmt: skip
    print(f"{'case':<22} {'buffer':<15} {'llama.cpp MiB':>14} {'paramtool MiB':>14} {'diff':>8}")
    for name, kind, theirs_v, ours_v in rows:
        diff = (ours_v - theirs_v) / theirs_v * 100 if theirs_v else 0.0
        print(f"{name:<22} {kind:<15} {theirs_v:>14.2f} {ours_v:>14.2f} {diff:>+7.1f}%")
    for line in splits:
        print(line)


if __name__ == "__main__":
    main()
