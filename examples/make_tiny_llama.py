"""Regenerate examples/tiny-llama: a Llama-layout checkpoint with random bf16 weights.

    python examples/make_tiny_llama.py

The layout (names, shapes, dtypes, config.json) is that of Llama 3 at a toy
size, so `paramtool inspect examples/tiny-llama` shows what it would show for
the real thing. Seeded: the output is the same on every run.
"""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 344,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 2048,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def tensors(cfg: dict) -> dict[str, tuple[int, ...]]:
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h)}
    for n in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{n}."
        shapes |= {
            p + "input_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (h, h),
            p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h),
            p + "self_attn.o_proj.weight": (h, h),
            p + "post_attention_layernorm.weight": (h,),
            p + "mlp.gate_proj.weight": (i, h),
            p + "mlp.up_proj.weight": (i, h),
            p + "mlp.down_proj.weight": (h, i),
        }
    shapes |= {"model.norm.weight": (h,), "lm_head.weight": (v, h)}
    return shapes


def main() -> None:
    out = Path(__file__).parent / "tiny-llama"
    out.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in tensors(CONFIG).items():
        if name.endswith("norm.weight"):
            a = np.ones(shape, dtype=np.float32)
        else:
            a = rng.normal(0.0, 0.02, size=shape).astype(np.float32)
        arrays[name] = a.astype(ml_dtypes.bfloat16)
    save_file(arrays, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    total = sum(int(np.prod(s)) for s in tensors(CONFIG).values())
    print(f"wrote {out} ({total:,} parameters)")


if __name__ == "__main__":
    main()
