"""Bytes to records, nothing else: the safetensors header, GGUF, the shard index.

A format module is handed bytes (or an open file) and returns records
(:mod:`paramtool.records`) or raises an error named after the format's own failure
kinds. It never lists a folder and never touches the network; :mod:`paramtool.sources`
does both.
"""
