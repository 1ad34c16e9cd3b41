"""Resilience benchmark: this architecture vs a naive synchronous chain, same faults, same load, one run.

    python -m bench [--quick]

See docs/benchmarks.md for what is measured and how.
"""
