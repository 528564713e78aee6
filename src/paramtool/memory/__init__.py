"""What a model costs to hold: weights at every precision, KV cache, training, GPU fit.

Exact integer arithmetic over the model description; every formula is in
docs/formulas.md with its source. The answer of ``footprint`` is
:class:`~paramtool.memory.estimate.Footprint`.
"""
