"""Following one demo run through the shop's log, stage by stage.

The `Watcher` reads the topics from where they ended when the run started, the way
`riverbed tail` does, and keeps a tally of the events that carry the run's id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from examples.shop.app import POISON_SKU, app, flows, format_cents, invoices, orders, payments
from examples.shop.events import (
    InvoiceIssued,
    OrderEnriched,
    OrderPayment,
    OrderPlaced,
    PaymentCaptured,
)
from riverbed import DecodeError, Record, TopicPartition
from riverbed.brokers.counting import group_lag

__all__ = ["DLQ", "DeadLetterEntry", "Stage", "Watcher", "group_lags"]

DLQ = "orders.dlq"


@dataclass
class Stage:
    """One topic as this run sees it."""

    title: str
    topic: str
    expected: int
    count: int = 0
    last: str = ""
    per_order: Counter[str] = field(default_factory=Counter)


@dataclass
class DeadLetterEntry:
    order_id: str
    partition: int
    offset: int
    error: str
    attempts: str


class Watcher:
    """Reads this run's events from the log, from the offsets at the start of the run.

    Only records whose payload carries this run's id count, so earlier runs (and their
    backlog, which the consumers may still be working through) never leak into the tally.
    """

    def __init__(self, run_id: str, batch: Sequence[OrderPlaced]) -> None:
        self.run_id = run_id
        poison = [o.order_id for o in batch if o.sku == POISON_SKU]
        self.poison = set(poison)
        self.ordered = {o.order_id for o in batch}
        self.paid = self.ordered - self.poison
        # Follow the first order and the declined one hop by hop, for the summary.
        self.trace: dict[str, list[str]] = {oid: [] for oid in [batch[0].order_id, *poison[:1]]}
        self.stages = {
            orders.name: Stage("orders placed", orders.name, len(batch)),
            payments.name: Stage("payments captured", payments.name, len(self.paid)),
            invoices.name: Stage("invoices issued", invoices.name, len(self.paid)),
            DLQ: Stage("dead letters", DLQ, len(self.poison)),
            flows.enriched.name: Stage("orders enriched", flows.enriched.name, len(batch)),
            flows.order_payments.name: Stage(
                "payments matched", flows.order_payments.name, len(self.paid)
            ),
        }
        self.dead: list[DeadLetterEntry] = []
        self.news: list[str] = []
        """Notable moments (a dead letter, an unpaid order) for the display to print."""
        self.invoiced_cents = 0
        self.named = 0
        """Enriched orders of this run that found their customer in the table."""
        self._positions: dict[TopicPartition, int] = {}

    async def start_at_end(self) -> None:
        for name in self.stages:
            info = await app.broker.describe_topic(name)
            for p in info.partitions:
                self._positions[TopicPartition(name, p.partition)] = p.end_offset

    async def poll(self, timeout: float) -> None:
        records = await app.broker.fetch(self._positions, max_records=2000, timeout=timeout)
        for rec in records:
            self._positions[TopicPartition(rec.topic, rec.partition)] = rec.offset + 1
            self._see(rec)

    def _see(self, rec: Record[Any]) -> None:
        topic = orders if rec.topic == DLQ else app.get_topic(rec.topic)
        try:
            event = topic.codec.decode(rec.value)
        except DecodeError:
            return  # not one of ours: someone else wrote a bad payload to the topic
        if isinstance(event, OrderPayment) and not event.paid:
            # Any run's: an order waits 10 minutes of event time for its payment.
            self.news.append(
                f"order {event.order_id} got no payment within 10 minutes "
                f"({rec.topic}[{rec.partition}]@{rec.offset})"
            )
            return
        if event.run_id != self.run_id:
            return
        stage = self.stages[rec.topic]
        stage.count += 1
        stage.per_order[event.order_id] += 1
        stage.last = describe(event, rec)
        if event.order_id in self.trace:
            self.trace[event.order_id].append(f"{rec.topic}[{rec.partition}]@{rec.offset}")
        if isinstance(event, InvoiceIssued):
            self.invoiced_cents += event.amount_cents
        if isinstance(event, OrderEnriched) and event.customer_name is not None:
            self.named += 1
        if rec.topic == DLQ:
            h = rec.headers
            error = f"{h.get('dlq.error.type', '?')}: {h.get('dlq.error.message', '?')}"
            self.dead.append(
                DeadLetterEntry(
                    event.order_id,
                    int(h.get("dlq.partition", "-1")),
                    int(h.get("dlq.offset", "-1")),
                    error,
                    h.get("dlq.attempts", "?"),
                )
            )
            self.news.append(
                f"order {event.order_id} went to {DLQ} after {h.get('dlq.attempts', '?')} "
                f"attempts: {error}"
            )

    def complete(self) -> bool:
        """Every paid order has an invoice and a matched payment, every declined one a
        dead letter, and every order its enriched copy."""
        return not any(self._missing().values())

    def missing(self) -> str:
        return ", ".join(f"{len(ids)} order(s) {what}" for what, ids in self._missing().items())

    def _missing(self) -> dict[str, set[str]]:
        def seen(topic: str) -> set[str]:
            return set(self.stages[topic].per_order)

        return {
            "without invoice": self.paid - seen(invoices.name),
            "without dead letter": self.poison - seen(DLQ),
            "not enriched": self.ordered - seen(flows.enriched.name),
            "without matched payment": self.paid - seen(flows.order_payments.name),
        }


def describe(event: Any, rec: Record[Any]) -> str:
    where = f"p{rec.partition}@{rec.offset}"
    if isinstance(event, PaymentCaptured):
        return f"{event.payment_id} {format_cents(event.amount_cents)}  {where}"
    if isinstance(event, InvoiceIssued):
        return f"{event.invoice_no} to {event.customer}  {where}"
    if isinstance(event, OrderEnriched):
        return f"{event.order_id} for {event.customer_name or '?'} ({event.country})  {where}"
    if isinstance(event, OrderPayment):
        return f"{event.order_id} paid by {event.payment_id}  {where}"
    if rec.topic == DLQ:
        return f"{event.order_id} {rec.headers.get('dlq.error.type', '?')}  {where}"
    return f"{event.order_id} {event.customer} {event.quantity}x{event.sku}  {where}"


async def group_lags() -> list[tuple[str, str, int]]:
    """(group, topic, lag) for every consumer and flow of the app: records not committed
    past. Each flow's groups come in order, so a pass that finds a flow's first group at
    lag 0 and then its next one also at 0 saw the records between them all handled."""
    reads = [(spec.group, spec.topic.name) for spec in app.consumers]
    reads += [(sub.group, sub.primary) for flow in app.flows for sub in flow.subs]
    out = []
    for group, topic in reads:
        lag = await group_lag(app.broker, group, topic)
        out.append((group, topic, sum(lag.values())))
    return out
