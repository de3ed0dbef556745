"""The shop's flows: what the orders say, kept up to date as they come.

    orders ─key_by(customer)─▶ shop.by-customer.repartition.1 ─┬─ join(customers) ─▶ enriched-orders
      │                                   Tumbling(60 s) sum   ├──▶ revenue-per-minute
      │                                   Session(30 s) count  └──▶ customer-sessions
      └─ join_stream(payments, within 10 min, how="left") ─────────▶ order-payments

A join reads partition p of both sides together, so both must be keyed alike and have
as many partitions (co-partitioned). Orders are keyed by order id and customers by
customer id: `key_by(customer)` re-keys the orders through one internal repartition
topic, and the three per-customer steps share it. Payments are keyed by order id like
the orders, with as many partitions: they join the orders as they are.

Times are event times: an order's time is when the storefront placed it, a payment's
when the `payments` group captured it. Records reach a step a little out of order (the
repartition topic merges four partitions; a payment trails the newer orders while its
consumer catches up), so every step tolerates some lateness (`grace`): a window's final
result comes that much after its end.

`declare_flows` wires them onto any app with the three input topics: the shop's app
(`examples.shop.app`), or a test's app on a mock clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from examples.shop.events import (
    CustomerProfile,
    CustomerRevenue,
    CustomerSession,
    OrderEnriched,
    OrderPayment,
    OrderPlaced,
    PaymentCaptured,
)
from riverbed import App, Session, Table, Topic, Tumbling

__all__ = [
    "PAYMENT_GRACE",
    "PAYMENT_WINDOW",
    "REVENUE_WINDOW",
    "SESSION_WINDOW",
    "ShopFlows",
    "as_revenue",
    "as_session",
    "declare_flows",
    "enrich",
    "match_payment",
]

REVENUE_WINDOW = Tumbling(60, grace=10)
"""Revenue per customer per minute; orders up to 10 s out of order still count."""

SESSION_WINDOW = Session(gap=30, grace=10)
"""A customer's visit: orders no more than 30 s apart."""

PAYMENT_WINDOW = 600.0
"""Seconds between an order and its payment for them to match (10 minutes)."""

PAYMENT_GRACE = 60.0
"""A payment is stamped when it is captured, which may be well after newer orders
reached the join (a consumer catching up after a restart): a minute of slack."""


@dataclass(frozen=True)
class ShopFlows:
    """The flows' output topics and their queryable tables."""

    enriched: Topic[OrderEnriched]
    order_payments: Topic[OrderPayment]
    revenue: Topic[CustomerRevenue]
    sessions: Topic[CustomerSession]
    customer_table: Table[CustomerProfile]
    """customer id -> profile, as the enrichment last read it"""
    revenue_table: Table[Any]
    """customer id -> their minutes, `WindowValue`s of revenue in cents"""
    session_table: Table[Any]
    """customer id -> their sessions, `WindowValue`s of order counts"""

    @property
    def topics(self) -> list[Topic[Any]]:
        return [self.enriched, self.order_payments, self.revenue, self.sessions]


def declare_flows(
    app: App,
    *,
    orders: Topic[OrderPlaced],
    payments: Topic[PaymentCaptured],
    customers: Topic[CustomerProfile],
) -> ShopFlows:
    """Declare the shop's two flows on `app` (see the module docstring)."""
    n = orders.partitions
    enriched = app.topic("enriched-orders", OrderEnriched, partitions=n)
    revenue_out = app.topic("revenue-per-minute", CustomerRevenue, partitions=n)
    sessions_out = app.topic("customer-sessions", CustomerSession, partitions=n)
    order_payments = app.topic("order-payments", OrderPayment, partitions=n)

    by_customer = app.stream(orders, name="by-customer").key_by(lambda o: o.customer)
    by_customer.join(customers, enrich, how="left", name="customers").to(enriched)
    revenue = (
        by_customer.group_by()
        .window(REVENUE_WINDOW, emit="both")
        .sum(lambda o: o.total_cents, name="revenue")
    )
    revenue.changes().map(as_revenue).to(revenue_out)
    sessions = by_customer.group_by().window(SESSION_WINDOW, emit="both").count(name="sessions")
    sessions.changes().map(as_session).to(sessions_out)

    app.stream(orders, name="payment-match").join_stream(
        payments,
        match_payment,
        within=PAYMENT_WINDOW,
        how="left",
        grace=PAYMENT_GRACE,
        name="order-payments",
    ).to(order_payments)
    return ShopFlows(
        enriched=enriched,
        order_payments=order_payments,
        revenue=revenue_out,
        sessions=sessions_out,
        customer_table=app.tables["customers"],
        revenue_table=revenue.table,
        session_table=sessions.table,
    )


# -- the steps ---------------------------------------------------------------------------------
def enrich(order: OrderPlaced, profile: CustomerProfile | None) -> OrderEnriched:
    """The order with what the customer table holds for its customer (None: nothing)."""
    return OrderEnriched(
        order_id=order.order_id,
        customer=order.customer,
        customer_name=None if profile is None else profile.name,
        country=None if profile is None else profile.country,
        sku=order.sku,
        total_cents=order.total_cents,
        run_id=order.run_id,
    )


def match_payment(order: OrderPlaced, payment: PaymentCaptured | None) -> OrderPayment:
    """An order with its payment, or alone once 10 minutes passed without one."""
    return OrderPayment(
        order_id=order.order_id,
        customer=order.customer,
        total_cents=order.total_cents,
        payment_id=None if payment is None else payment.payment_id,
        amount_cents=None if payment is None else payment.amount_cents,
        run_id=order.run_id,
    )


def as_revenue(change: dict[str, Any]) -> CustomerRevenue:
    """A windowed sum's change (`{"key", "start", "end", "value", "final"}`) as an event."""
    return CustomerRevenue(
        customer=change["key"],
        start=change["start"],
        end=change["end"],
        revenue_cents=change["value"],
        final=change["final"],
    )


def as_session(change: dict[str, Any]) -> CustomerSession:
    """A session count's change as an event; a merged-away session has `removed`."""
    return CustomerSession(
        customer=change["key"],
        start=change["start"],
        end=change["end"],
        orders=change["value"] or 0,
        final=change["final"],
        removed=change.get("removed", False),
    )
