"""What the flows' tables know about each customer, for the demo's summary.

The flows run in the demo's process, which owns every partition, so their tables answer
for every customer: `flows.revenue_table["ada"]` is Ada's minutes, as `WindowValue`s.
A `CustomerLine` is read while the app runs (the tables empty when it stops).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.table import Table

from examples.shop.app import flows, format_cents

__all__ = ["CustomerLine", "customer_lines", "customer_table"]


@dataclass(frozen=True)
class CustomerLine:
    """One customer: their profile, latest minute of revenue and latest session."""

    customer: str
    name: str
    minute: str
    session: str


def customer_lines(customers: Sequence[str]) -> list[CustomerLine]:
    """A line per customer, from the tables as they are now."""
    return [
        CustomerLine(
            customer,
            getattr(flows.customer_table.get(customer), "name", "?"),
            _latest_minute(flows.revenue_table.get(customer, [])),
            _latest_session(flows.session_table.get(customer, [])),
        )
        for customer in customers
    ]


def _latest_minute(windows: list[Any]) -> str:
    if not windows:
        return "-"
    w = windows[-1]
    return f"{_clock(w.start)[:5]} {format_cents(w.value):>9} {_state(w)}"


def _latest_session(windows: list[Any]) -> str:
    if not windows:
        return "-"
    w = windows[-1]
    seconds = (w.end - w.start) / 1000
    return f"{w.value:>3} orders in {seconds:4.1f}s {_state(w)}"


def _state(window: Any) -> str:
    return "closed" if window.final else "open"


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


def customer_table(lines: Sequence[CustomerLine]) -> Table:
    """The lines as a table: customer, name, latest minute's revenue, latest session."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("customer", style="cyan")
    table.add_column("name")
    table.add_column("latest minute")
    table.add_column("latest session")
    for line in lines:
        table.add_row(line.customer, line.name, line.minute, line.session)
    return table
