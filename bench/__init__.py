"""Benchmarks and the chaos run (`make bench`, `make chaos`)."""
