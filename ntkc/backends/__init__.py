"""Backends: turn a plan into something that runs (a JAX callable) or can be read (source)."""
