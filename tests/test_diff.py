"""``diff_checkpoints``: structure, values, re-sharding, partial changes and the roll-ups."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from layouts import make_checkpoint, tiny_model
from paramtool.sources.local import open_local
from paramtool.values.diff import diff_checkpoints, layer_ranges


def diff(tmp_path, a: dict, b: dict, shards_b: int = 1, **kw):
    pa = make_checkpoint(tmp_path / "a", a, shards=1)
    pb = make_checkpoint(tmp_path / "b", b, shards=shards_b, reverse=shards_b > 1)
    return diff_checkpoints(open_local([str(pa)]), open_local([str(pb)]), **kw)


def test_identical_copy(tmp_path):
    r = diff(tmp_path, tiny_model(), tiny_model())
    assert r.identical and all(t.identical for t in r.tensors)
    assert r.total.compared == len(tiny_model()) and r.total.changed == 0 and r.total.rel_l2 == 0.0


def test_resharded_copy_is_identical(tmp_path):
    r = diff(tmp_path, tiny_model(), tiny_model(), shards_b=3)
    assert r.identical and len(r.b.files) == 3 and r.total.identical == len(tiny_model())


def test_one_perturbed_tensor(tmp_path):
    a = tiny_model()
    b = dict(a)
    name = "model.layers.1.self_attn.v_proj.weight"
    w = a[name].astype(np.float32)
    w[2, 3] += 0.5
    w[7, 0] = -w[7, 0]
    b[name] = w.astype(ml_dtypes.bfloat16)
    r = diff(tmp_path, a, b)
    assert not r.identical
    (d,) = [t for t in r.tensors if not t.identical]
    x, y = a[name].astype(np.float64), b[name].astype(np.float64)
    assert d.name == name and (d.category, d.layer) == ("attention", 1)
    assert d.changed == int(np.count_nonzero(x != y)) == 2
    assert d.l2 == pytest.approx(np.linalg.norm(y - x), rel=1e-12)
    assert d.rel_l2 == pytest.approx(np.linalg.norm(y - x) / np.linalg.norm(x), rel=1e-12)
    assert d.max_abs == np.abs(y - x).max()
    att = r.by_category["attention"]
    assert (att.changed, att.identical, att.changed_layers) == (1, 7, (1,))
    assert att.changed_elements == 2 and att.rel_l2 == pytest.approx(d.rel_l2)
    assert not r.by_category["feed_forward"].touched
    assert dict(r.by_layer)[1].changed == 1 and dict(r.by_layer)[0].changed == 0
    assert r.most_changed(5) == [d]


def test_change_in_one_span_still_measures_the_whole_norm(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(10_000).astype(np.float32)
    y = x.copy()
    y[9_500] += 1.0  # only the last span differs
    a, b = {"w": x}, {"w": y}
    for workers in (1, 2):
        r = diff(tmp_path / str(workers), a, b, chunk=1024, workers=workers)
        (d,) = r.tensors
        assert d.changed == 1
        assert d.rel_l2 == pytest.approx(1.0 / np.linalg.norm(x.astype(np.float64)), rel=1e-6)


def test_structure_added_removed_reshaped_retyped(tmp_path):
    a = tiny_model()
    b = dict(a)
    del b["model.layers.0.mlp.up_proj.weight"]
    b["model.layers.0.mlp.extra.weight"] = np.zeros((4, 4), np.float32)
    b["model.embed_tokens.weight"] = a["model.embed_tokens.weight"][:32]
    b["model.norm.weight"] = a["model.norm.weight"].astype(ml_dtypes.bfloat16)  # same values
    r = diff(tmp_path, a, b)
    assert [t.name for t in r.added] == ["model.layers.0.mlp.extra.weight"]
    assert [t.name for t in r.removed] == ["model.layers.0.mlp.up_proj.weight"]
    assert [(x.shape, y.shape) for x, y in r.reshaped] == [((64, 16), (32, 16))]
    (t,) = r.retyped
    assert t.name == "model.norm.weight" and not t.identical
    assert (t.changed, t.rel_l2, t.max_abs) == (0, 0.0, 0.0)
    assert not r.identical
    ff = r.by_category["feed_forward"]
    assert (ff.added, ff.removed, ff.changed_layers) == (1, 1, (0,))
    assert r.by_category["embedding"].reshaped == 1 and r.by_category["norm"].retyped == 1


def test_nan_and_inf_are_counted_apart_from_the_norms(tmp_path):
    x = np.array([1.0, 2.0, np.nan, 4.0, np.inf, 0.0], np.float32)
    y = x.copy()
    y[0] = 1.5  # finite change
    y[3] = np.nan  # becomes NaN
    # x[2] NaN stays the same NaN, x[4] inf stays inf: bit-identical, not changes
    r = diff(tmp_path, {"w": x}, {"w": y})
    (d,) = r.tensors
    assert (d.changed, d.nonfinite) == (2, 1)
    assert d.max_abs == 0.5
    assert d.l2 == 0.5
    assert d.rel_l2 == pytest.approx(0.5 / math.sqrt(1 + 4 + 0))


def test_zero_tensor_that_moved_has_no_relative_change(tmp_path):
    r = diff(
        tmp_path,
        {"lora_B.weight": np.zeros(4, np.float32)},
        {"lora_B.weight": np.array([0, 0.25, 0, 0], np.float32)},
    )
    (d,) = r.tensors
    assert d.rel_l2 is None and d.l2 == 0.25 and d.changed == 1


def test_signed_zero_is_a_bit_change_but_not_a_value_change(tmp_path):
    r = diff(
        tmp_path, {"w": np.array([0.0, 1.0], np.float32)}, {"w": np.array([-0.0, 1.0], np.float32)}
    )
    (d,) = r.tensors
    assert not d.identical and d.changed == 1 and d.max_abs == 0.0 and d.rel_l2 == 0.0


def test_filter_limits_structure_and_values(tmp_path):
    import re

    a = tiny_model()
    b = dict(a)
    b["model.layers.0.mlp.up_proj.weight"] = np.zeros((40, 16), ml_dtypes.bfloat16)
    del b["lm_head.weight"]
    r = diff(tmp_path, a, b, pattern=re.compile(r"self_attn"))
    assert r.identical and r.total.compared == 8 and r.pattern == "self_attn"


def test_layer_ranges():
    assert layer_ranges([3, 0, 1, 2, 7, 9, 10]) == "0-3, 7, 9-10"
    assert layer_ranges([]) == ""
    assert layer_ranges([5]) == "5"
