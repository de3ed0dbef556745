"""Following one demo run through the shop's log, stage by stage.

The `Watcher` reads the topics from where they ended when the run started, the way
`riverbed tail` does, and keeps a tally of the events that carry the run's id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from examples.shop.app import POISON_SKU, app, format_cents, invoices, orders, payments
from examples.shop.events import InvoiceIssued, OrderPlaced, PaymentCaptured
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
        self.paid = {o.order_id for o in batch} - self.poison
        # Follow the first order and the declined one hop by hop, for the summary.
        self.trace: dict[str, list[str]] = {oid: [] for oid in [batch[0].order_id, *poison[:1]]}
        self.stages = {
            orders.name: Stage("orders placed", orders.name, len(batch)),
            payments.name: Stage("payments captured", payments.name, len(self.paid)),
            invoices.name: Stage("invoices issued", invoices.name, len(self.paid)),
            DLQ: Stage("dead letters", DLQ, len(self.poison)),
        }
        self.dead: list[DeadLetterEntry] = []
        self.news: list[str] = []
        """Notable moments (a dead letter) for the display to print as they happen."""
        self.invoiced_cents = 0
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
        """Every paid order has an invoice and every declined one a dead letter."""
        invoiced = set(self.stages[invoices.name].per_order)
        dead = set(self.stages[DLQ].per_order)
        return invoiced >= self.paid and dead >= self.poison

    def missing(self) -> str:
        no_invoice = self.paid - set(self.stages[invoices.name].per_order)
        no_dlq = self.poison - set(self.stages[DLQ].per_order)
        return f"{len(no_invoice)} order(s) without invoice, {len(no_dlq)} without dead letter"


def describe(event: Any, rec: Record[Any]) -> str:
    where = f"p{rec.partition}@{rec.offset}"
    if isinstance(event, PaymentCaptured):
        return f"{event.payment_id} {format_cents(event.amount_cents)}  {where}"
    if isinstance(event, InvoiceIssued):
        return f"{event.invoice_no} to {event.customer}  {where}"
    if rec.topic == DLQ:
        return f"{event.order_id} {rec.headers.get('dlq.error.type', '?')}  {where}"
    return f"{event.order_id} {event.customer} {event.quantity}x{event.sku}  {where}"


async def group_lags() -> list[tuple[str, str, int]]:
    """(group, topic, lag) for every consumer of the app: records not committed past."""
    out = []
    for spec in app.consumers:
        lag = await group_lag(app.broker, spec.group, spec.topic.name)
        out.append((spec.group, spec.topic.name, sum(lag.values())))
    return out
