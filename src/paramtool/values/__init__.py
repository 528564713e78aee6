"""Commands about values: the streaming tensor reader, statistics, the NaN/Inf scan, hashes,
verification against the Hub, and diffs. Reads are bounded (reused per-thread buffers),
whatever the checkpoint's size.
"""
