"""`python -m benchmarks backends`: riverbed on every backend against the raw client.

For each backend (sqlite, kafka, nats, redis) the same produce and consume workloads run
twice in the same invocation: once through riverbed (`topic.publish_many`, an
`@app.consumer` handler) and once through the backend's own client used the most
efficient way it allows (batching, pipelining), sending the same payload bytes and the
same envelope. The table reports riverbed / raw; issue 3 asks for at least 0.70 on
produce and on consume. See `benchmarks/README.md`.
"""
