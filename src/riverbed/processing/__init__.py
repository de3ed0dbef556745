"""Event processors: stream dataflows, keyed state tables, windows and joins.

`app.stream(topic)` starts a dataflow (`stream.py`); aggregations keep their state in
tables (`table.py`, `store.py`) whose changes commit with the input offsets; windows
(`windows.py`) and joins (`joins.py`) are pure engines over one partition's state;
`runner.py` runs a flow's sub-topology as a consumer-group member.
"""
