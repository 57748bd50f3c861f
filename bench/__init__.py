"""Benchmarks of ngshare: the nbgrader class cycle over v1 and v2, and large files.

Run from the repository root, e.g. `python -m bench.classcycle --help`,
`python -m bench.compare --help`, `python -m bench.largefile --help`.
Results and the commands that made them are in docs/benchmarks.md.
"""
