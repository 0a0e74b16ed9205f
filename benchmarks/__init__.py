"""Benchmarks: ``python -m benchmarks.run TARGET`` regenerates the paper's tables and figures (see benchmarks.run)."""
