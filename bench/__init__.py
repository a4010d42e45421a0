"""Benchmarks: each module prints figures and ends with one JSON line."""
