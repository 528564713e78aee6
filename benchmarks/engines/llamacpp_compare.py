"""Compare paramtool's llama.cpp accounting with llama.cpp's own load log, on CPU.

Writes tiny GGUF files with the ``gguf`` package (a dense Llama, a Mixtral-style MoE, a
Gemma-2-style sliding-window model), loads each with llama.cpp through llama-cpp-python
(``Llama(model_path, n_ctx, n_gpu_layers=0, verbose=True)``) in a subprocess, parses the
model, KV and compute buffer sizes from its stderr, runs paramtool's llama.cpp engine for
the same settings (no GPU) and prints the differences. Not part of the test run:

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


@dataclass(frozen=True)
class Case:
    name: str
    arch: str  # llama | gemma2
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


def write_gguf(case: Case, path: Path) -> dict[str, int]:
    """The file, and the bytes of each tensor as written."""
    w = gguf.GGUFWriter(str(path), case.arch)
    w.add_context_length(CTX_TRAIN)
    w.add_embedding_length(EMBD)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_file_type(1)
    if case.experts:
        w.add_expert_count(case.experts)
        w.add_expert_used_count(2)
    if case.window:
        w.add_sliding_window(case.window)
        w.add_attn_logit_softcapping(50.0)
        w.add_final_logit_softcapping(30.0)
    _vocab(w)
    sizes: dict[str, int] = {}
    rng = np.random.default_rng(0)

    def t(name: str, *shape: int, f32: bool = False) -> None:
        a = (rng.standard_normal(shape) * 0.02).astype(np.float32 if f32 else np.float16)
        w.add_tensor(name, a)
        sizes[name] = a.nbytes

    t("token_embd.weight", VOCAB, EMBD)
    for i in range(LAYERS):
        p = f"blk.{i}"
        t(f"{p}.attn_norm.weight", EMBD, f32=True)
        t(f"{p}.attn_q.weight", HEADS * HEAD_DIM, EMBD)
        t(f"{p}.attn_k.weight", KV_HEADS * HEAD_DIM, EMBD)
        t(f"{p}.attn_v.weight", KV_HEADS * HEAD_DIM, EMBD)
        t(f"{p}.attn_output.weight", EMBD, HEADS * HEAD_DIM)
        t(f"{p}.ffn_norm.weight", EMBD, f32=True)
        if case.arch == "gemma2":
            t(f"{p}.post_attention_norm.weight", EMBD, f32=True)
            t(f"{p}.post_ffw_norm.weight", EMBD, f32=True)
        if case.experts:
            t(f"{p}.ffn_gate_inp.weight", case.experts, EMBD, f32=True)
            t(f"{p}.ffn_gate_exps.weight", case.experts, FF, EMBD)
            t(f"{p}.ffn_up_exps.weight", case.experts, FF, EMBD)
            t(f"{p}.ffn_down_exps.weight", case.experts, EMBD, FF)
        else:
            t(f"{p}.ffn_gate.weight", FF, EMBD)
            t(f"{p}.ffn_up.weight", FF, EMBD)
            t(f"{p}.ffn_down.weight", EMBD, FF)
    t("output_norm.weight", EMBD, f32=True)
    if case.arch != "gemma2":
        t("output.weight", VOCAB, EMBD)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return sizes


def model_view(case: Case, sizes: dict[str, int]) -> ModelView:
    config: dict[str, Any] = {
        "hidden_size": EMBD, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM, "num_hidden_layers": LAYERS, "intermediate_size": FF,
        "vocab_size": VOCAB, "max_position_embeddings": CTX_TRAIN,
    }  # fmt: skip
    if case.arch == "gemma2":
        config |= {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2",
                   "sliding_window": case.window, "tie_word_embeddings": True}  # fmt: skip
    elif case.experts:
        config |= {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
                   "num_local_experts": case.experts, "num_experts_per_tok": 2,
                   "tie_word_embeddings": False}  # fmt: skip
    else:
        config |= {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                   "tie_word_embeddings": False}  # fmt: skip
    dims = ModelDims.from_description(describe(config))
    layer = [sum(v for k, v in sizes.items() if k.startswith(f"blk.{i}.")) for i in range(LAYERS)]
    experts = [
        sum(v for k, v in sizes.items() if k.startswith(f"blk.{i}.") and "_exps" in k)
        for i in range(LAYERS)
    ]
    total = sum(sizes.values())
    return ModelView(
        dims=dims, parameters=0, active_parameters=0, weights_bytes=total,
        active_weights_bytes=total, layer_bytes=tuple(layer),
        embedding_bytes=sizes["token_embd.weight"], output_bytes=sizes.get("output.weight", 0),
        other_bytes=sizes["output_norm.weight"], routed_expert_bytes=tuple(experts),
        format="gguf", name=case.name,
    )  # fmt: skip


RUNNER = """
import sys
from llama_cpp import Llama
Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_gpu_layers=0, n_batch=2048,
      n_ubatch=512, flash_attn=sys.argv[3] == "1", swa_full=False, verbose=True)
"""
_LINE = re.compile(r"(\S+)\s+(model|KV|compute|output) buffer size =\s+([\d.]+) MiB")


def run_llamacpp(python: str, path: Path, case: Case) -> dict[str, float]:
    """MiB per kind of buffer (model, KV, compute, output), summed over the log's lines."""
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
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default="/tmp/lcpvenv/bin/python")
    ap.add_argument("--keep", action="store_true", help="print the log of each run")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            path = Path(tmp) / f"{case.arch}-{case.experts}-{case.window}.gguf"
            sizes = write_gguf(case, path)
            got = run_llamacpp(args.python, path, case)
            fit = ENGINE.plan(
                model_view(case, sizes),
                Request(devices=(), context=case.n_ctx, gpu_layers=0,
                        flash_attention=case.flash),
            )  # fmt: skip
            ours = {
                "model": fit.ram.weights_bytes / MIB,
                "KV": fit.ram.kv_cache_bytes / MIB,
                "compute+output": fit.ram.activation_bytes / MIB,
            }
            theirs = {
                "model": got.get("model", 0.0),
                "KV": got.get("KV", 0.0),
                "compute+output": got.get("compute", 0.0) + got.get("output", 0.0),
            }
            for kind in ours:
                rows.append((case.name, kind, theirs[kind], ours[kind]))
    print(f"{'case':<22} {'buffer':<15} {'llama.cpp MiB':>14} {'paramtool MiB':>14} {'diff':>8}")
    for name, kind, theirs_v, ours_v in rows:
        diff = (ours_v - theirs_v) / theirs_v * 100 if theirs_v else 0.0
        print(f"{name:<22} {kind:<15} {theirs_v:>14.2f} {ours_v:>14.2f} {diff:>+7.1f}%")


if __name__ == "__main__":
    main()
