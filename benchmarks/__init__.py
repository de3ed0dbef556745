"""riverbed's benchmark harness: `python -m benchmarks [--events N] [--quick]`.

Each workload runs in its own child process and fresh temporary directory, so its peak
RSS is its own; the parent collects the results, compares them with the targets of
issue 2 and with the raw sqlite3 ceiling measured in the same run, and writes
`benchmarks/results/latest.md`. See `benchmarks/README.md`.
"""
