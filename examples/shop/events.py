"""The shop's events: one typed schema per topic.

Money is in integer cents so that totals add up exactly. Every event carries the
`run_id` of the demo run (or other producer) that started its order, so one run's
events can be told apart from earlier ones in the persistent log.
"""

from __future__ import annotations

from riverbed import Event


class OrderPlaced(Event, type="shop.order.placed"):
    """A customer placed an order (published by the storefront)."""

    order_id: str
    customer: str
    sku: str
    quantity: int
    unit_price_cents: int
    run_id: str = ""

    @property
    def total_cents(self) -> int:
        return self.quantity * self.unit_price_cents


class PaymentCaptured(Event, type="shop.payment.captured"):
    """The order's amount was charged (published by the `payments` group)."""

    order_id: str
    payment_id: str
    customer: str
    amount_cents: int
    run_id: str = ""


class InvoiceIssued(Event, type="shop.invoice.issued"):
    """An invoice was issued for a paid order (published by the `invoicing` group)."""

    order_id: str
    invoice_no: str
    customer: str
    amount_cents: int
    run_id: str = ""
