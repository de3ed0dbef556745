"""A flow app: a per-customer sum of purchase amounts in tumbling one-minute windows.

Run as `tests.crash.workers.windowed:app` (by `workers/run.py` or `riverbed run`). The
test process declares the same flow with `declare` on an App of its own, to produce the
events and, once the workers are gone, to restore the table from its changelog.

Configured by environment variables, which the parent test sets (the harness's names):

- `RB_CRASH_BROKER`    broker URL (default: the sqlite log at RB_CRASH_DB)
- `RB_CRASH_DB`        path of the sqlite log, when RB_CRASH_BROKER is not set
- `RB_CRASH_SESSION`   session timeout in seconds (default 2.0)
- `RB_CRASH_HEARTBEAT` heartbeat interval in seconds (default 0.4)

The App is built on first access to `app` (PEP 562), not at import: the test imports
this module for `declare` without a worker's environment.
"""

from __future__ import annotations

import functools
import os

from riverbed import App, ConsumerOptions, Event, Topic, Tumbling
from riverbed.processing.stream import TableStream

APP = "crash"
FLOW = "sums"
GROUP = f"{APP}.{FLOW}"
"""The flow's consumer group, `<app>.<flow name>`."""
TOPIC = "events"
"""The harness's topic name: CrashEnv reads offsets and ownership of it."""
PARTITIONS = 4
CLOSED = "closed-sums"
"""Where each window's final sum is published once it closes."""
WINDOW = 60.0
"""Window size in seconds."""
GRACE = 600.0
"""Seconds a window stays open past its end: more than any pause of the test's producer
(a partition's watermark moves on with wall-clock time while no record comes)."""


class Purchase(Event):
    """One purchase by a customer (the record key); amounts are integers, so sums are
    exact whatever order they are added in."""

    customer: str
    amount: int


def declare(app: App) -> tuple[Topic[Purchase], TableStream[int]]:
    """Declare the purchases topic and the windowed sums flow on `app`.

    Retention None keeps every closed window queryable, so the final table holds the
    whole history and can be compared with a reference computed from the inputs. Each
    window's final sum also goes to topic `CLOSED` when it closes (emit="close"),
    committed with the input offsets and the state.
    """
    purchases = app.topic(TOPIC, Purchase, partitions=PARTITIONS, key=lambda p: p.customer)
    sums = (
        app.stream(purchases, name=FLOW)
        .group_by()
        .window(Tumbling(WINDOW, grace=GRACE), retention=None)
        .sum(lambda p: p.amount)
    )
    sums.to(app.topic(CLOSED, dict, partitions=PARTITIONS))
    return purchases, sums


@functools.cache
def _app_from_env() -> App:
    env = os.environ
    url = env.get("RB_CRASH_BROKER") or f"sqlite:///{os.path.abspath(env['RB_CRASH_DB'])}"
    app = App(
        APP,
        broker=url,
        consumer_options=ConsumerOptions(
            session_timeout=float(env.get("RB_CRASH_SESSION", "2.0")),
            heartbeat_interval=float(env.get("RB_CRASH_HEARTBEAT", "0.4")),
            commit_interval=0.1,
        ),
        maintenance_interval=1.0,
    )
    declare(app)
    return app


def __getattr__(name: str) -> App:
    if name == "app":
        return _app_from_env()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
