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


class CustomerProfile(Event, type="shop.customer.profile"):
    """Who a customer is (published by the storefront's sign-up; the latest one counts)."""

    customer: str
    name: str
    country: str


# -- what the shop's flows publish (see `examples.shop.flows`) ------------------------------
class OrderEnriched(Event, type="shop.order.enriched"):
    """An order with its customer's profile as the customer table held it then.

    `customer_name` and `country` are None when the table had no such customer.
    """

    order_id: str
    customer: str
    customer_name: str | None
    country: str | None
    sku: str
    total_cents: int
    run_id: str = ""


class OrderPayment(Event, type="shop.order.payment"):
    """An order and its payment, when one came within the window; `payment_id` None:
    none came (published once the window has passed)."""

    order_id: str
    customer: str
    total_cents: int
    payment_id: str | None
    amount_cents: int | None
    run_id: str = ""

    @property
    def paid(self) -> bool:
        return self.payment_id is not None


class CustomerRevenue(Event, type="shop.customer.revenue"):
    """A customer's order value in one minute [start, end) (ms); `final`: the minute
    closed and this is its last word."""

    customer: str
    start: int
    end: int
    revenue_cents: int
    final: bool


class CustomerSession(Event, type="shop.customer.session"):
    """A customer's run of orders no more than the session gap apart, [start, end) in ms.

    `removed`: the session merged into another (an order bridged the gap) and is gone.
    """

    customer: str
    start: int
    end: int
    orders: int
    final: bool
    removed: bool = False
