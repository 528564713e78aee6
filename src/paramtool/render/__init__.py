"""Renderers: JSON (stdlib only), Rich tables and Markdown, all from the core's dataclasses."""
