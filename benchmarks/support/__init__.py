"""Helpers the benchmarks and the tests share (issue 74: benchmarks had put ``tests/`` on ``sys.path`` to borrow
them): a throwaway PostgreSQL cluster (:mod:`.pgcluster`), a process stuck on a file (:mod:`.stalls`), the fuzzed
inputs of every parser (:mod:`.fuzzcases`) and synthetic audio (:mod:`.audiofactory`).

A benchmark run as ``python benchmarks/bench_x.py`` has ``benchmarks/`` on ``sys.path`` and imports
``support.pgcluster``; a test (``python -m pytest`` from the repository root) imports ``benchmarks.support.pgcluster``.
No module here imports a test module.
"""
