"""How a consume workload's times become its result (shared by raw and riverbed sides).

`seconds` and `rate` are the streaming part: from the first event handled to the last
one. Start-up (connecting, joining the group, the first fetch) is reported beside it as
`startup_s`, and `rate_from_start` counts it in, because on Kafka a group join alone
takes seconds and would swamp a short run.
"""

from __future__ import annotations

from typing import Any


def consume_result(n: int, t0: float, first: float, last: float) -> dict[str, Any]:
    streaming = max(last - first, 1e-9)
    return {
        "events": n,
        "seconds": streaming,
        "rate": n / streaming,
        "startup_s": first - t0,
        "rate_from_start": n / (last - t0),
    }


def produce_result(n: int, seconds: float) -> dict[str, Any]:
    return {"events": n, "seconds": seconds, "rate": n / seconds}
