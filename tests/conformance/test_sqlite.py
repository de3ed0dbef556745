"""The conformance suite on the embedded SQLite log, plus what only a file can show."""

import asyncio
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from riverbed.brokers.base import Broker, TopicPartition, TopicSpec
from riverbed.brokers.sqlite import SqliteBroker
from riverbed.testing.conformance import BrokerConformance, make_record, unique_name


class TestSqliteBroker(BrokerConformance):
    @pytest_asyncio.fixture
    async def broker(self, tmp_path: Path) -> AsyncIterator[SqliteBroker]:
        b = SqliteBroker(f"sqlite:///{tmp_path}/t.db")
        await b.start()
        yield b
        await b.aclose()

    async def open_peer(self, broker: Broker) -> Broker:
        other = SqliteBroker(broker.url)
        await other.start()
        return other

    # -- beyond the protocol: durability and processes ---------------------------------------
    async def test_declares_what_the_embedded_log_guarantees(self, broker: Broker) -> None:
        caps = broker.capabilities
        assert caps.multi_process
        assert caps.transactions
        assert caps.retention
        assert caps.fetch_by_time

    async def test_log_and_groups_survive_reopen(self, broker: Broker) -> None:
        spec = TopicSpec(unique_name("t"), 2, retention_ms=86_400_000)
        await broker.create_topic(spec)
        group = unique_name("g")
        records = [make_record(1, key=b"k", value=b"kept", headers={"h": "v"})]
        await broker.append(spec.name, records)
        await broker.join_group(group, "m", [spec.name])
        await broker.commit(group, "m", {TopicPartition(spec.name, 1): 1})
        await broker.leave_group(group, "m")
        await broker.aclose()

        reopened = SqliteBroker(broker.url)
        await reopened.start()
        try:
            assert (await reopened.describe_topic(spec.name)).spec == spec
            got = await reopened.fetch({TopicPartition(spec.name, 1): 0})
            assert [(r.id, r.key, r.value, r.headers, r.offset) for r in got] == [
                (records[0].id, b"k", b"kept", {"h": "v"}, 0)
            ]
            assert await reopened.committed(group, spec.name) == {1: 1}
            assert await reopened.append(spec.name, [make_record(1)]) == [1]
        finally:
            await reopened.aclose()

    async def test_fsync_durability_works(self, tmp_path: Path) -> None:
        b = SqliteBroker(f"sqlite:///{tmp_path}/fsync.db", durability="fsync")
        await b.start()
        try:
            await b.create_topic(TopicSpec("t"))
            assert await b.append("t", [make_record(), make_record()]) == [0, 1]
            assert len(await b.fetch({TopicPartition("t", 0): 0})) == 2
        finally:
            await b.aclose()

    async def test_fetch_wakes_on_append_from_another_process(self, broker: Broker) -> None:
        topic = unique_name("t")
        await broker.create_topic(TopicSpec(topic))
        script = textwrap.dedent(
            f"""
            import asyncio, time
            from riverbed.brokers.sqlite import SqliteBroker
            from riverbed.testing.conformance import make_record

            async def main():
                b = SqliteBroker({broker.url!r})
                await b.start()
                await asyncio.sleep(0.3)
                print(time.time(), flush=True)
                await b.append({topic!r}, [make_record(value=b"from-child")])
                await b.aclose()

            asyncio.run(main())
            """
        )
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
        )
        got = await broker.fetch({TopicPartition(topic, 0): 0}, timeout=30.0)
        woke_at = time.time()
        out, _ = await child.communicate()
        assert child.returncode == 0
        assert [r.value for r in got] == [b"from-child"]
        delay = woke_at - float(out.split()[0])
        assert delay < 1.0, f"fetch woke {delay:.3f} s after another process appended"
