"""What a checkpoint is: the one model description, anatomy, quantization, adapters, MoE.

:mod:`~paramtool.analysis.model` reads config.json (or GGUF metadata) once into the
:class:`~paramtool.analysis.model.ModelDescription` every other analysis and command
uses; :mod:`~paramtool.analysis.breakdown` tallies the tensors; the answer of ``inspect``
is :class:`~paramtool.analysis.inspection.Inspection`.
"""
