"""Benchmarks run as ``python benchmarks/<name>.py``; a package so that one can import another."""
