"""`python -m benchmarks flows`: a keyed tumbling-window count, riverbed against raw.

The same log (N events, 4 partitions, 1000 keys, event time one ms apart) is counted
per key and minute three times in the same run, each in its own child process on its
own copy of the log: by a riverbed flow with `guarantee="exactly_once"`, by the same
flow with `guarantee="at_least_once"`, and by a hand-written loop over the same
`SqliteBroker` that does the same durable work. The table reports events/s, the cost of
exactly-once over at-least-once, and riverbed / raw. See `benchmarks/README.md`.
"""
