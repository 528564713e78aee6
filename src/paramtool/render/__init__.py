"""Renderers for people: Rich tables, Markdown and JUnit, drawn from the core's records.

The only place below the CLI that imports rich. JSON documents are the records' own
``to_dict()``, built in the core."""
