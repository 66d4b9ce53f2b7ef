"""Benchmarks of the throughput core (run ``python bench/throughput.py``); not imported by the pipeline."""
