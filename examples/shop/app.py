"""The shop: an order pipeline on riverbed.

    storefront ─OrderPlaced─▶ orders ─[payments]─PaymentCaptured─▶ payments
                                │                                      │
                                ▼ declined after 3 tries          [invoicing]
                            orders.dlq                                 │
                                                                       ▼
                  [notifications] ◀──────── InvoiceIssued ──────── invoices

Three topics, keyed by order id, so every event of one order lands in the same
partition number of each topic and stays in order. Three consumer groups (in
brackets): `payments` and `invoicing` publish downstream through `ctx.publish`, which
on the embedded log commits the output together with the input offset in one
transaction; `notifications` is a plain sync function. An order for the SKU "POISON"
is always declined: it is retried, then parked in `orders.dlq` with the reason, and
the pipeline moves on.

Next to the pipeline, two flows (`examples.shop.flows`) read the same log: orders
enriched with the `customers` topic as a table, revenue per customer per minute, each
customer's sessions, and each order matched with its payment within 10 minutes.

Run the consumers and flows with `riverbed run examples.shop.app:app` from the
repository root, or everything at once, producer included, with
`python -m examples.shop.demo`.
Importing this module only declares; nothing connects or starts.
"""

from __future__ import annotations

import logging

from examples.shop.events import CustomerProfile, InvoiceIssued, OrderPlaced, PaymentCaptured
from examples.shop.flows import declare_flows
from riverbed import App, Context, Retry

__all__ = [
    "CATALOG",
    "PARTITIONS",
    "POISON_SKU",
    "PaymentDeclined",
    "app",
    "customers",
    "flows",
    "format_cents",
    "invoices",
    "orders",
    "payments",
]

log = logging.getLogger("examples.shop")

PARTITIONS = 4
POISON_SKU = "POISON"
"""The payment provider declines every order for this SKU: the dead-letter path."""

CATALOG: dict[str, int] = {
    "MUG": 1_200,
    "TEE": 2_500,
    "HOODIE": 5_900,
    "STICKERS": 300,
    "POSTER": 1_800,
}
"""Unit prices in cents."""

app = App("shop")

orders = app.topic("orders", OrderPlaced, partitions=PARTITIONS, key=lambda e: e.order_id)
payments = app.topic("payments", PaymentCaptured, partitions=PARTITIONS, key=lambda e: e.order_id)
invoices = app.topic("invoices", InvoiceIssued, partitions=PARTITIONS, key=lambda e: e.order_id)
# Keyed by customer id, with as many partitions as the orders once re-keyed by customer:
# the enrichment joins the two partition by partition.
customers = app.topic("customers", CustomerProfile, partitions=PARTITIONS, key=lambda c: c.customer)
flows = declare_flows(app, orders=orders, payments=payments, customers=customers)


class PaymentDeclined(Exception):
    """The payment provider refused the charge; trying again will not change that."""


@app.consumer(orders, group="payments", retry=Retry(attempts=3, backoff=0.05))
async def capture_payment(order: OrderPlaced, ctx: Context) -> None:
    """Charge the order, then announce the payment downstream."""
    if order.sku == POISON_SKU:
        raise PaymentDeclined(f"card declined for order {order.order_id} (sku {order.sku})")
    captured = PaymentCaptured(
        order_id=order.order_id,
        payment_id=f"pay-{order.order_id}",  # derived, so a redelivery charges nothing twice
        customer=order.customer,
        amount_cents=order.total_cents,
        run_id=order.run_id,
    )
    await ctx.publish(payments, captured)


@app.consumer(payments, group="invoicing")
async def issue_invoice(payment: PaymentCaptured, ctx: Context) -> None:
    """Issue the invoice for a captured payment."""
    invoice = InvoiceIssued(
        order_id=payment.order_id,
        invoice_no=f"INV-{payment.order_id}",
        customer=payment.customer,
        amount_cents=payment.amount_cents,
        run_id=payment.run_id,
    )
    await ctx.publish(invoices, invoice)


@app.consumer(invoices, group="notifications")
def notify_customer(invoice: InvoiceIssued) -> None:
    """Mail the invoice to the customer (a log line stands in for the mail server).

    A sync handler: riverbed runs it in a thread pool, so blocking I/O is fine here.
    """
    log.info(
        "mail to %s: invoice %s, %s",
        invoice.customer,
        invoice.invoice_no,
        format_cents(invoice.amount_cents),
    )


def format_cents(amount: int) -> str:
    """`1234` -> `'$12.34'`."""
    return f"${amount // 100:,}.{amount % 100:02d}"
