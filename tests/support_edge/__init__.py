"""Helpers for edge tests: a tiny torch-free artifact, fake sources, a collecting sink."""
