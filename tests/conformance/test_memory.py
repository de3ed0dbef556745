"""The conformance suite on the memory backend."""

from collections.abc import AsyncIterator

import pytest_asyncio

from riverbed.brokers.memory import MemoryBroker
from riverbed.testing.conformance import BrokerConformance


class TestMemoryBroker(BrokerConformance):
    @pytest_asyncio.fixture
    async def broker(self) -> AsyncIterator[MemoryBroker]:
        b = MemoryBroker()
        await b.start()
        yield b
        await b.aclose()
