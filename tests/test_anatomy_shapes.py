"""classify_all reads names of one shape (alike but for their digits) once: the shortcut
must answer what reading each name alone answers, and what the names say."""

from __future__ import annotations

from paramtool.analysis.anatomy import Role, classify, classify_all
from paramtool.records import TensorInfo

NAMES = [
    # digits inside words share a shape with other digits: fc1 is up, fc2 is down
    "model.layers.0.mlp.fc1.weight",
    "model.layers.0.mlp.fc2.weight",
    "layers.3.feed_forward.w1.weight",
    "layers.3.feed_forward.w2.weight",
    "layers.3.feed_forward.w3.weight",
    # a literal '#' reads as '?', never as a number
    "model.layers.#.mlp.up_proj.weight",
    "model.layers.?.mlp.up_proj.weight",
    "model.layers.7.mlp.up_proj.weight",
    # numbers of other lengths, experts, and one too long to be a layer
    "model.layers.61.mlp.experts.255.down_proj.weight",
    "model.layers.9.mlp.experts.3.down_proj.weight",
    "model.layers.1234567890123456789.self_attn.q_proj.weight",
    # shapes alike but for their numbers' places share Roles: the same text between the
    # first number and the last must read the same pair, whatever the shape
    "model.layers.3.mlp.experts.107.gate_proj.weight",
    "model.layers.3.mlp.experts.107.up_proj.weight",
    "model.layers.31.mlp.experts.7.up_proj.weight",
    "model.layers.3.mlp.experts.17.up_proj.weight",
    "model.layers.3.mlp.experts.107.gate_proj.weight_scale_inv",
    "model.experts.5.layers.6.mlp.up_proj.weight",
    "model.layers.6.mlp.experts.5.up_proj.weight",
    "model.layers.12345678901234567890.mlp.experts.4.up_proj.weight",
    "model.layers.4.mlp.experts.12345678901234567890.up_proj.weight",
    "model.layers.1.self_attn.q_proj.weight",
    # text beyond ASCII, a lone surrogate (json.loads can make one), no numbers at all
    "modèle.layers.12.self_attn.k_proj.weight",
    "modèle.layers.4.self_attn.k_proj.weight",
    "model.layers.2.\udc80.weight",
    "model.embed_tokens.weight",
    "model.norm.weight",
    "x" * 300 + ".layers.1.weight",
]


def _tensors(names: list[str]) -> list[TensorInfo]:
    # matrices, and a norm's vector: nothing for the second pass to settle
    return [TensorInfo(n, "F32", (8,) if "norm" in n else (8, 8), 0, 256) for n in names]


def test_the_shortcut_answers_what_each_name_alone_answers() -> None:
    for order in (NAMES, NAMES[::-1]):  # either name of a shape may be met first
        got = classify_all(_tensors(order))
        assert got == [classify(n) for n in order]


def test_what_the_names_say() -> None:
    roles = dict(zip(NAMES, classify_all(_tensors(NAMES)), strict=True))
    assert roles["model.layers.0.mlp.fc1.weight"].component == "up"
    assert roles["model.layers.0.mlp.fc2.weight"].component == "down"
    assert [roles[f"layers.3.feed_forward.w{k}.weight"].component for k in (1, 2, 3)] == [
        "gate",
        "down",
        "up",
    ]
    assert roles["model.layers.#.mlp.up_proj.weight"].layer is None
    assert roles["model.layers.7.mlp.up_proj.weight"] == Role("feed_forward", 7, "up")
    expert = roles["model.layers.61.mlp.experts.255.down_proj.weight"]
    assert (expert.layer, expert.expert, expert.component) == (61, 255, "expert")
    assert roles["model.layers.9.mlp.experts.3.down_proj.weight"].expert == 3
    assert roles["model.layers.1234567890123456789.self_attn.q_proj.weight"].layer is None
    assert roles["model.layers.1.self_attn.q_proj.weight"] == Role("attention", 1, "q")
    assert roles["modèle.layers.12.self_attn.k_proj.weight"].layer == 12
    assert roles["modèle.layers.4.self_attn.k_proj.weight"].layer == 4
    assert roles["x" * 300 + ".layers.1.weight"] == Role("other", None, "")
