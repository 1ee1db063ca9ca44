"""Analyses: pure functions of a Graph (they never modify it)."""
