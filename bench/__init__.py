"""Benchmarks of the resource API's token verification; they print ratios, not pass/fail.

Run them all with ``python -m bench`` (``--help`` for the knobs, ``--quick`` for a smoke run).
"""
