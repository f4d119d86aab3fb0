"""Benchmarks: speed and quality figures, each printed beside a baseline measured in the same run."""
