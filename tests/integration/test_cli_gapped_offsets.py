"""The CLI's record counts and lag on a backend whose offsets have gaps (Redis).

There `end_offset - committed` is a distance between entry ids, not a number of
records, so the CLI counts by reading; these checks fail if it subtracts.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from typer.testing import CliRunner

from riverbed.brokers import broker_from_url
from riverbed.brokers.base import TopicPartition, TopicSpec
from riverbed.cli import app as cli_app
from riverbed.testing.conformance import make_record


def run_json(*args: str) -> object:
    result = CliRunner().invoke(cli_app, [*args, "--json"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


async def test_topic_counts_and_group_lag_count_records(redis_url: str) -> None:
    url = f"{redis_url}?prefix=rbcli-{uuid.uuid4().hex[:8]}"
    broker = broker_from_url(url)
    await broker.start()
    try:
        assert not broker.capabilities.dense_offsets
        await broker.create_topic(TopicSpec("t", 2))
        offsets = await broker.append("t", [make_record(p) for p in (0, 0, 0, 1, 0)])
        await broker.join_group("g", "m", ["t"])
        await broker.commit("g", "m", {TopicPartition("t", 0): offsets[1] + 1})
        await broker.leave_group("g", "m")
    finally:
        await broker.aclose()

    topic = await asyncio.to_thread(run_json, "topics", "describe", "t", "--broker", url)
    assert isinstance(topic, dict)
    assert topic["records"] == 5
    assert [p["records"] for p in topic["partition_offsets"]] == [4, 1]
    group = await asyncio.to_thread(run_json, "groups", "describe", "g", "--broker", url)
    assert isinstance(group, dict)
    assert {r["partition"]: r["lag"] for r in group["partitions"]} == {0: 2, 1: 1}
    assert group["lag"] == 3
