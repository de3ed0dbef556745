"""The conformance suite on NATS JetStream (the machine's server, or one started here).

The server is shared by test runs, so each test removes the streams and group documents
it made: otherwise `list_topics` and `list_groups` would slow down run after run.
"""

from collections.abc import AsyncIterator, Sequence
from typing import Any

import nats
import pytest_asyncio

from riverbed.brokers._nats_codec import encode_name, stream_name
from riverbed.brokers._nats_groups import BUCKET
from riverbed.brokers.base import Assignment, Broker, TopicInfo, TopicSpec
from riverbed.brokers.nats import NatsBroker
from riverbed.testing.conformance import BrokerConformance


class _TidyNatsBroker(NatsBroker):
    """A `NatsBroker` that remembers the topics and groups it made, for the cleanup."""

    def __init__(self, url: str, made: tuple[set[str], set[str]]) -> None:
        super().__init__(url)
        self.topics_made, self.groups_made = made

    async def create_topic(self, spec: TopicSpec) -> TopicInfo:
        self.topics_made.add(spec.name)
        return await super().create_topic(spec)

    async def join_group(
        self, group: str, member_id: str, topics: Sequence[str], **kw: Any
    ) -> Assignment:
        self.groups_made.add(group)
        return await super().join_group(group, member_id, topics, **kw)

    async def set_offsets(self, group: str, offsets: Any) -> None:
        self.groups_made.add(group)
        await super().set_offsets(group, offsets)


async def _clean(url: str, topics: set[str], groups: set[str]) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for topic in topics:
            await nc.request(f"$JS.API.STREAM.DELETE.{stream_name(topic)}", b"")
        if groups:
            kv = await js.key_value(BUCKET)
            for group in groups:
                await kv.purge(f"g.{encode_name(group)}")
                await js.purge_stream(
                    f"KV_{BUCKET}", subject=f"$KV.{BUCKET}.m.{encode_name(group)}.>"
                )
    finally:
        await nc.close()


class TestNatsBroker(BrokerConformance):
    @pytest_asyncio.fixture
    async def broker(self, nats_url: str) -> AsyncIterator[NatsBroker]:
        self._made: tuple[set[str], set[str]] = (set(), set())
        b = _TidyNatsBroker(nats_url, self._made)
        await b.start()
        yield b
        await b.aclose()
        await _clean(nats_url, *self._made)

    async def open_peer(self, broker: Broker) -> Broker:
        # A second connection: another machine, as far as the server can tell.
        other = _TidyNatsBroker(broker.url, self._made)
        await other.start()
        return other
