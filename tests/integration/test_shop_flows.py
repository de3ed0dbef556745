"""The shop's flows (`examples.shop.flows`) on virtual time, with chosen event times.

Each test builds an app with the shop's three input topics (4 partitions, keyed as in
`examples.shop.app`) and the shop's flows on a mock clock, publishes orders, payments
and customers with the event times it needs, and checks what the flows published.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from examples.shop.app import PARTITIONS
from examples.shop.events import (
    CustomerProfile,
    CustomerRevenue,
    CustomerSession,
    OrderEnriched,
    OrderPayment,
    OrderPlaced,
    PaymentCaptured,
)
from examples.shop.flows import ShopFlows, declare_flows

from riverbed import App, Topic, WindowValue
from riverbed.testing import MockClock

from .conftest import Backend, read_topic, wait_for

T0 = 1_700_000_040_000  # a minute boundary
S = 1_000  # ms per second


@dataclass
class Shop:
    app: App
    clock: MockClock
    orders: Topic[OrderPlaced]
    payments: Topic[PaymentCaptured]
    customers: Topic[CustomerProfile]
    flows: ShopFlows

    async def publish_at(self, topic: Topic[Any], ts: int, *events: Any) -> None:
        """Append `events` to `topic` with event time `ts` (ms)."""
        records = [self.app.producer.build(topic, e) for e in events]
        for rec in records:
            rec.timestamp = ts
        await self.app.broker.append(topic.name, records)

    async def place_at(self, ts: int, placed: OrderPlaced) -> None:
        """Publish an order and wait until the per-customer steps have seen it: orders of
        different ids cross different partitions, so without waiting they may meet the
        steps in another order (and then be more than the sessions' grace apart)."""
        n = len(await self.values(self.flows.enriched)) + 1
        await self.publish_at(self.orders, ts, placed)
        await wait_for(lambda: self.has(self.flows.enriched, n), what=placed.order_id)

    async def values(self, topic: Topic[Any] | str) -> list[Any]:
        t = self.app.get_topic(topic) if isinstance(topic, str) else topic
        return [t.codec.decode(r.value) for r in await read_topic(self.app.broker, t.name)]

    async def has(self, topic: Topic[Any] | str, n: int) -> bool:
        return len(await self.values(topic)) >= n


def shop(backend: Backend) -> Shop:
    clock = MockClock(T0)
    app = backend.app("shop", clock=clock)
    orders = app.topic("orders", OrderPlaced, partitions=PARTITIONS, key=lambda o: o.order_id)
    payments = app.topic(
        "payments", PaymentCaptured, partitions=PARTITIONS, key=lambda p: p.order_id
    )
    customers = app.topic(
        "customers", CustomerProfile, partitions=PARTITIONS, key=lambda c: c.customer
    )
    flows = declare_flows(app, orders=orders, payments=payments, customers=customers)
    return Shop(app, clock, orders, payments, customers, flows)


def order(oid: str, customer: str, cents: int = 1_000, quantity: int = 1) -> OrderPlaced:
    return OrderPlaced(
        order_id=oid, customer=customer, sku="MUG", quantity=quantity, unit_price_cents=cents
    )


def payment(oid: str, cents: int = 1_000) -> PaymentCaptured:
    return PaymentCaptured(
        order_id=oid, payment_id=f"pay-{oid}", customer="ada", amount_cents=cents
    )


ADA = CustomerProfile(customer="ada", name="Ada Lovelace", country="GB")
ADA_MOVED = CustomerProfile(customer="ada", name="Ada Lovelace", country="FR")


# -- stream-table join --------------------------------------------------------------------
async def test_orders_are_enriched_with_the_customer_table_as_it_is_then(
    backend: Backend,
) -> None:
    s = shop(backend)
    async with s.app:
        await s.publish_at(s.customers, T0, ADA)
        await s.publish_at(s.orders, T0 + S, order("o1", "ada"), order("o2", "zed", 300, 2))
        await wait_for(lambda: s.has(s.flows.enriched, 2), what="2 enriched orders")
        # Ada moves: orders after the new profile carry it, earlier ones keep the old one.
        await s.publish_at(s.customers, T0 + 2 * S, ADA_MOVED)
        await s.publish_at(s.orders, T0 + 3 * S, order("o3", "ada"))
        await wait_for(lambda: s.has(s.flows.enriched, 3), what="3 enriched orders")
        enriched: list[OrderEnriched] = await s.values(s.flows.enriched)
        table = s.flows.customer_table.snapshot()
    got = {e.order_id: (e.customer, e.customer_name, e.country, e.total_cents) for e in enriched}
    assert got == {
        "o1": ("ada", "Ada Lovelace", "GB", 1_000),
        "o2": ("zed", None, None, 600),  # how="left": an unknown customer keeps the order
        "o3": ("ada", "Ada Lovelace", "FR", 1_000),
    }
    assert table == {"ada": ADA_MOVED}


# -- tumbling windows ------------------------------------------------------------------------
async def test_revenue_per_customer_per_minute_closes_with_the_minute(backend: Backend) -> None:
    s = shop(backend)
    async with s.app:
        await s.place_at(T0 + 1 * S, order("o1", "ada", 1_200))
        await s.place_at(T0 + 30 * S, order("o2", "ada", 2_500, quantity=2))
        await s.place_at(T0 + 59_999, order("o3", "grace", 300))
        await s.place_at(T0 + 61 * S, order("o4", "ada", 5_900))
        want_ada = [
            WindowValue(T0, T0 + 60 * S, 6_200),
            WindowValue(T0 + 60 * S, T0 + 120 * S, 5_900),
        ]
        await wait_for(lambda: s.flows.revenue_table.get("ada") == want_ada, what="ada's 2 minutes")
        await wait_for(lambda: s.flows.revenue_table.get("grace") is not None, what="grace's")
        # 70 s pass with no order: every minute above is over, grace (10 s) included.
        s.clock.advance(70)
        await wait_for(lambda: _finals(s, 3), what="3 final minutes")
        # Now too late for ada's first minute (closed at T0 + 70 s): set aside, not counted.
        await s.publish_at(s.orders, T0 + 5 * S, order("o5", "ada", 9_999))
        late = "shop.by-customer.late"
        await wait_for(lambda: s.has(late, 2), what="the late order, once per window step")
        revenue: list[CustomerRevenue] = await s.values(s.flows.revenue)
        late_orders = await s.values(late)
    finals = {(r.customer, r.start): r.revenue_cents for r in revenue if r.final}
    assert finals == {("ada", T0): 6_200, ("ada", T0 + 60 * S): 5_900, ("grace", T0): 300}
    # One update per order (in arrival order, which crosses partitions), the last one of
    # each minute equal to its final result.
    updates = [(r.customer, r.start) for r in revenue if not r.final]
    assert sorted(updates) == [("ada", T0), ("ada", T0), ("ada", T0 + 60 * S), ("grace", T0)]
    assert {(r.customer, r.start): r.revenue_cents for r in revenue if not r.final} == finals
    # The revenue step and the session step each set the late order aside.
    assert [o["order_id"] for o in late_orders] == ["o5", "o5"]


async def _finals(s: Shop, n: int) -> bool:
    revenue: list[CustomerRevenue] = await s.values(s.flows.revenue)
    return sum(r.final for r in revenue) >= n


# -- session windows ---------------------------------------------------------------------------
async def test_sessions_split_on_a_30_s_gap_and_merge_when_an_order_bridges_it(
    backend: Backend,
) -> None:
    s = shop(backend)

    def sessions() -> list[tuple[int, int, int]]:
        return [(w.start, w.end, w.value) for w in s.flows.session_table.get("ada", [])]

    async with s.app:
        for i, at in enumerate((0, 10 * S, 45 * S)):  # 35 s between the 2nd and 3rd
            await s.place_at(T0 + at, order(f"o{i}", "ada"))
        want = [(T0, T0 + 10 * S + 1, 2), (T0 + 45 * S, T0 + 45 * S + 1, 1)]
        await wait_for(lambda: sessions() == want, what=f"two sessions {want}")
        await s.place_at(T0 + 40 * S, order("bridge", "ada"))
        want = [(T0, T0 + 45 * S + 1, 4)]
        await wait_for(lambda: sessions() == want, what="one merged session")
        s.clock.advance(41)  # past the end + gap (30 s) + grace (10 s)
        await wait_for(lambda: _session_closed(s), what="the session's final result")
        changes: list[CustomerSession] = await s.values(s.flows.sessions)
    got = [(c.start, c.end, c.orders, c.final, c.removed) for c in changes]
    assert got == [
        (T0, T0 + 1, 1, False, False),
        (T0, T0 + 10 * S + 1, 2, False, False),
        (T0 + 45 * S, T0 + 45 * S + 1, 1, False, False),
        (T0 + 45 * S, T0 + 45 * S + 1, 0, False, True),  # merged into the first
        (T0, T0 + 45 * S + 1, 4, False, False),
        (T0, T0 + 45 * S + 1, 4, True, False),
    ]


async def _session_closed(s: Shop) -> bool:
    sessions: list[CustomerSession] = await s.values(s.flows.sessions)
    return any(c.final for c in sessions)


# -- stream-stream join --------------------------------------------------------------------------
async def test_payments_match_orders_within_10_minutes_and_unpaid_orders_come_out_after(
    backend: Backend,
) -> None:
    s = shop(backend)
    async with s.app:
        await s.publish_at(s.orders, T0, order("paid", "ada"), order("unpaid", "ada"))
        await s.publish_at(s.orders, T0, order("paid-late", "ada"))
        await s.publish_at(s.payments, T0 + 30 * S, payment("paid"))
        await wait_for(lambda: s.has(s.flows.order_payments, 1), what="the paid order")
        # 11 minutes after its order: too far apart to match.
        await s.publish_at(s.payments, T0 + 660 * S, payment("paid-late"))
        # Ten minutes and the grace (60 s) pass: the orders left alone come out unpaid.
        s.clock.advance(661)
        await wait_for(lambda: s.has(s.flows.order_payments, 3), what="2 unpaid orders")
        matched: list[OrderPayment] = await s.values(s.flows.order_payments)
    got = {m.order_id: (m.payment_id, m.amount_cents, m.paid) for m in matched}
    assert got == {
        "paid": ("pay-paid", 1_000, True),
        "unpaid": (None, None, False),
        "paid-late": (None, None, False),
    }
    assert len(matched) == 3
