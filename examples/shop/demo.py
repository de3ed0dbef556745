"""Watch the shop's pipeline work: `python -m examples.shop.demo [--orders N] [--broker URL]`.

Starts the shop app in this process (`async with app`), places N orders at a visible
pace, and follows each stage live by reading the log itself: orders placed, payments
captured, invoices issued, and the declined order landing in `orders.dlq`; and the
flows' outputs: orders enriched with the customer table (the demo publishes the
customers first) and payments matched to their orders. When every order has gone
through, it prints a summary, with what the flows' tables say about each customer, and
exits 0 (1 if that does not happen within `--timeout` seconds).

The embedded log persists (./.riverbed/shop.db by default), so each run tags its orders
with a fresh run id and counts only its own events; rerunning is always safe.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from examples.shop.app import (
    CATALOG,
    POISON_SKU,
    app,
    customers,
    flows,
    format_cents,
    invoices,
    orders,
)
from examples.shop.board import CustomerLine, customer_lines, customer_table
from examples.shop.events import CustomerProfile, OrderPlaced
from examples.shop.watch import DLQ, Watcher, group_lags
from riverbed import RiverbedError
from riverbed.brokers.counting import partition_counts

PROFILES = (
    CustomerProfile(customer="ada", name="Ada Lovelace", country="GB"),
    CustomerProfile(customer="grace", name="Grace Hopper", country="US"),
    CustomerProfile(customer="edsger", name="Edsger Dijkstra", country="NL"),
    CustomerProfile(customer="barbara", name="Barbara Liskov", country="US"),
    CustomerProfile(customer="ken", name="Ken Thompson", country="US"),
    CustomerProfile(customer="margaret", name="Margaret Hamilton", country="US"),
    CustomerProfile(customer="dennis", name="Dennis Ritchie", country="US"),
    CustomerProfile(customer="frances", name="Frances Allen", country="US"),
)
"""The shop's customers, published to `customers` before each run's orders."""

CUSTOMERS = tuple(p.customer for p in PROFILES)


def make_orders(n: int, run_id: str) -> list[OrderPlaced]:
    """N orders for one run; the one in the middle is for the SKU that is always declined."""
    skus = sorted(CATALOG)
    batch = []
    for i in range(n):
        sku = POISON_SKU if i == n // 2 else skus[i % len(skus)]
        batch.append(
            OrderPlaced(
                order_id=f"{run_id}-{i:05d}",
                customer=CUSTOMERS[i % len(CUSTOMERS)],
                sku=sku,
                quantity=1 + i % 3,
                unit_price_cents=CATALOG.get(sku, 999),
                run_id=run_id,
            )
        )
    return batch


async def place_customers() -> None:
    """Publish every customer's profile: the enrichment's table holds the latest one."""
    await customers.publish_many(PROFILES)


async def place_orders(batch: Sequence[OrderPlaced], rate: float) -> None:
    """Publish the orders at `rate` per second; `rate <= 0` sends them in one batch."""
    if rate <= 0:
        await orders.publish_many(batch)
        return
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, order in enumerate(batch):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await orders.publish(order)


# -- showing it -------------------------------------------------------------------------
def stage_table(w: Watcher) -> Table:
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    table.add_column("stage")
    table.add_column("topic", style="cyan")
    table.add_column("this run", justify="right")
    table.add_column("", width=24)
    table.add_column("latest event", style="dim", no_wrap=True)
    for s in w.stages.values():
        bar = ProgressBar(total=max(s.expected, 1), completed=s.count, width=24)
        table.add_row(s.title, s.topic, f"{s.count}/{s.expected}", bar, s.last)
    return table


class Display:
    """A live table on a terminal; a plain progress line per second anywhere else."""

    def __init__(self, console: Console, watcher: Watcher) -> None:
        self.console = console
        self.watcher = watcher
        self._live: Live | None = None
        self._started = time.monotonic()
        self._last_line = 0.0

    @contextlib.contextmanager
    def running(self) -> Iterator[Display]:
        if not self.console.is_terminal:
            yield self
            self.line()
            return
        with Live(
            stage_table(self.watcher), console=self.console, auto_refresh=False
        ) as self._live:
            yield self
            self.refresh()
        self._live = None

    def refresh(self) -> None:
        for news in self.watcher.news:
            self.console.print(f"[yellow]![/yellow] {news}", highlight=False, soft_wrap=True)
        self.watcher.news.clear()
        if self._live is not None:
            self._live.update(stage_table(self.watcher), refresh=True)
        elif time.monotonic() - self._last_line >= 0.5:
            self.line()

    def line(self) -> None:
        self._last_line = time.monotonic()
        counts = "  ".join(
            f"{s.topic} {s.count}/{s.expected}" for s in self.watcher.stages.values()
        )
        self.console.print(
            f"{self._last_line - self._started:5.1f}s  {counts}", highlight=False, soft_wrap=True
        )


def print_summary(
    console: Console,
    w: Watcher,
    lags: list[tuple[str, str, int]],
    ends: dict[str, int],
    url: str,
    lines: list[CustomerLine],
) -> None:
    counts = Table(title=None, box=None, header_style="bold", pad_edge=False)
    counts.add_column("topic", style="cyan")
    counts.add_column("this run", justify="right")
    counts.add_column("in the log", justify="right")
    for s in w.stages.values():
        counts.add_row(s.topic, str(s.count), str(ends[s.topic]))
    console.print()
    console.print(f"[bold]Run {w.run_id} on {url}[/bold]")
    console.print(counts)

    invoiced = w.stages[invoices.name].per_order
    duplicates = sum(n - 1 for n in invoiced.values() if n > 1)
    console.print(
        f"\ninvoices: {len(invoiced)} for {len(w.paid)} paid orders, {duplicates} duplicates, "
        f"{format_cents(w.invoiced_cents)} invoiced",
        highlight=False,
    )
    console.print(f"dead letters in {DLQ}: {len(w.dead)}", highlight=False)
    for d in w.dead:
        console.print(
            f"  order {d.order_id} (orders[{d.partition}]@{d.offset}, {d.attempts} attempts): "
            f"{d.error}",
            highlight=False,
            soft_wrap=True,
        )
    print_flows(console, w, lines)
    console.print("consumer groups:", highlight=False)
    group_width = max(len(group) for group, _, _ in lags)
    topic_width = max(len(topic) for _, topic, _ in lags)
    for group, topic, lag in lags:
        console.print(
            f"  {group:<{group_width}} reads {topic:<{topic_width}} lag {lag}", highlight=False
        )
    for oid, hops in w.trace.items():
        console.print(
            f"order {oid} through the log: {' -> '.join(hops)}", highlight=False, soft_wrap=True
        )
    console.print()
    if url.startswith("memory:"):
        console.print("memory:// keeps nothing after exit; run on the default sqlite log to ")
        console.print("look around with the riverbed CLI afterwards.")
        return
    console.print("[bold]Look around with the CLI[/bold] (from this directory):")
    broker = f"--broker {url}"
    for cmd, why in (
        (f"riverbed tail invoices {broker}", "every invoice, one JSON record per line"),
        (f"riverbed dlq list orders {broker}", "the declined order and why"),
        (f"riverbed tail revenue-per-minute {broker}", "each customer's minutes, as they grow"),
        (f"riverbed groups describe payments {broker}", "committed offsets and lag"),
        (f"riverbed run examples.shop.app:app {broker}", "consumers and flows; Ctrl-C drains"),
    ):
        console.print(f"  {cmd}\n      [dim]{why}[/dim]", highlight=False, soft_wrap=True)


def print_flows(console: Console, w: Watcher, lines: list[CustomerLine]) -> None:
    matched = w.stages[flows.order_payments.name].per_order
    console.print(
        f"{flows.enriched.name}: {w.named} of {len(w.ordered)} orders carry their customer's "
        f"name\n{flows.order_payments.name}: {len(matched)} payments matched to "
        f"{len(w.paid)} paid orders within 10 minutes",
        highlight=False,
    )
    console.print(
        "per customer, from the flows' tables (customers; revenue per minute; sessions of "
        "orders at most 30 s apart):",
        highlight=False,
        soft_wrap=True,
    )
    console.print(customer_table(lines))


# -- the run ----------------------------------------------------------------------------
async def wait_for_groups(deadline: float) -> list[tuple[str, str, int]]:
    """Give the groups a moment to commit what they handled (lag 0), bounded."""
    while True:
        lags = await group_lags()
        if all(lag == 0 for _, _, lag in lags) or time.monotonic() >= deadline:
            return lags
        await asyncio.sleep(0.05)


async def run_demo(n: int, rate: float, timeout: float, console: Console) -> int:
    run_id = uuid.uuid4().hex[:8]
    batch = make_orders(n, run_id)
    url = app.broker_url()
    console.print(
        f"[bold]riverbed shop demo[/bold]: run {run_id}, {n} orders at "
        f"{f'{rate:g}/s' if rate > 0 else 'full speed'} on {url}",
        highlight=False,
        soft_wrap=True,
    )
    async with app:
        watcher = Watcher(run_id, batch)
        await watcher.start_at_end()
        display = Display(console, watcher)
        deadline = time.monotonic() + timeout + (n / rate if rate > 0 else 0)
        await place_customers()  # before the orders: they join against the latest profile
        async with asyncio.TaskGroup() as tg:
            tg.create_task(place_orders(batch, rate))
            with display.running():
                while not watcher.complete() and time.monotonic() < deadline:
                    await watcher.poll(timeout=0.1)
                    display.refresh()
        if not watcher.complete():
            console.print(f"[red]timed out after {timeout:g}s: {watcher.missing()}[/red]")
            return 1
        lags = await wait_for_groups(time.monotonic() + 5.0)
        lines = customer_lines(CUSTOMERS)
        ends = {}
        for name in watcher.stages:
            info = await app.broker.describe_topic(name)
            ends[name] = sum((await partition_counts(app.broker, info)).values())
    print_summary(console, watcher, lags, ends, url, lines)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.shop.demo",
        description="Run the shop pipeline in-process and watch orders become invoices.",
    )
    parser.add_argument("--orders", type=positive_int, default=200, help="orders to place")
    parser.add_argument(
        "--rate", type=float, default=50.0, help="orders per second (0: all at once)"
    )
    parser.add_argument(
        "--broker",
        help="broker URL (default: env RIVERBED_BROKER, else sqlite:///.riverbed/shop.db)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait after the last order"
    )
    return parser.parse_args(argv)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.broker:
        # The documented override: the app reads RIVERBED_BROKER when it connects.
        os.environ["RIVERBED_BROKER"] = args.broker
    console = Console(highlight=False)
    try:
        return asyncio.run(run_demo(args.orders, args.rate, args.timeout, console))
    except RiverbedError as exc:  # a bad URL, an unreachable broker: one line, no traceback
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        console.print("\ninterrupted; orders already placed stay in the log for the next run")
        return 130


if __name__ == "__main__":
    sys.exit(main())
