"""The backend conformance suite: every case of the `Broker` protocol, as a test class.

A backend's test module subclasses `BrokerConformance` and provides a `broker` fixture
that yields a started broker (and closes it afterwards)::

    import pytest_asyncio
    from riverbed.testing.conformance import BrokerConformance

    class TestMyBroker(BrokerConformance):
        @pytest_asyncio.fixture
        async def broker(self, tmp_path):
            b = MyBroker(f"my://{tmp_path}")
            await b.start()
            yield b
            await b.aclose()

A backend whose store can be opened twice (a file shared by processes, a server)
overrides `open_peer` to return a second, started handle on the same store; the group,
visibility and wake-up cases then run across the two handles. Cases that need a
capability the backend declares it lacks (`Capabilities`) are skipped with the reason;
nothing else is ever skipped. Add `pytest.register_assert_rewrite("riverbed.testing")`
to the conftest that imports this module to get pytest's detailed assertion messages.

Every case uses fresh topic and group names, so a backend on a shared server passes too.
"""

from __future__ import annotations

from riverbed.testing.conformance._base import make_record, unique_name
from riverbed.testing.conformance.commits import CommitCases
from riverbed.testing.conformance.fetch import FetchCases
from riverbed.testing.conformance.groups import GroupCases
from riverbed.testing.conformance.lifecycle import LifecycleCases
from riverbed.testing.conformance.retention import RetentionCases
from riverbed.testing.conformance.topics import TopicCases
from riverbed.testing.conformance.transactions import TransactionCases

__all__ = ["BrokerConformance", "make_record", "unique_name"]


# pytest collects inherited tests base-first (reverse MRO), so the areas are listed last to
# first: the cases then run lifecycle first and transactions last, as the areas build up.
class BrokerConformance(
    TransactionCases,
    RetentionCases,
    CommitCases,
    GroupCases,
    FetchCases,
    TopicCases,
    LifecycleCases,
):
    """The conformance cases; subclass it in a backend's test module (see module doc)."""
