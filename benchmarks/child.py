"""A workload's own process: `python -m benchmarks.child WORKLOAD '<json params>'`.

WORKLOAD is a name registered below or `package.module:function`.

Prints `RESULT <json>` as its last line (and `READY` when a workload asks its parent to
go on). The parent reads the peak RSS from `wait4`, so it is this process's alone.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

from benchmarks import latency, raw, throughput

WORKLOADS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "raw": raw.run,
    "append_api": throughput.append_api,
    "append_broker": throughput.append_broker,
    "end_to_end": throughput.end_to_end,
    "fill": throughput.fill,
    "consume_only": throughput.consume_only,
    "latency_one": latency.one_process,
    "latency_consumer": latency.consumer_process,
    "latency_producer": latency.producer_process,
}


def _workload(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A registered name, or `package.module:function` (imported only in this child, so
    a backend's client library is loaded only by the workloads that use it)."""
    if ":" not in name:
        return WORKLOADS[name]
    module, _, attr = name.partition(":")
    fn: Callable[[dict[str, Any]], dict[str, Any]] = getattr(importlib.import_module(module), attr)
    return fn


def main(argv: list[str]) -> int:
    name, params = argv[0], json.loads(argv[1])
    result = _workload(name)(params)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
