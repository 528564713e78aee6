"""paramtool: what is inside a model's weights, and what they cost to hold."""

__version__ = "0.1.0"
