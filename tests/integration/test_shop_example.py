"""The shop example, run for real: the demo as a newcomer runs it, and `riverbed run`.

Every assertion is on what the log holds afterwards, read back through a broker: the
pipeline's events once each, and the flows' outputs as the orders in the log imply them
(`test_shop_flows.py` checks the flows' rules on virtual time).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from examples.shop.app import POISON_SKU, app, flows, invoices, orders, payments
from examples.shop.demo import PROFILES, make_orders, place_customers, place_orders
from examples.shop.events import (
    CustomerRevenue,
    CustomerSession,
    InvoiceIssued,
    OrderEnriched,
    OrderPayment,
    OrderPlaced,
    PaymentCaptured,
)
from examples.shop.flows import REVENUE_WINDOW, SESSION_WINDOW

from riverbed import Broker
from riverbed.brokers import broker_from_url
from riverbed.brokers.counting import group_lag

from .conftest import read_topic

REPO = Path(__file__).resolve().parents[2]
DLQ = "orders.dlq"
GROUPS = [("payments", "orders"), ("invoicing", "payments"), ("notifications", "invoices")]
GROUPS += [(sub.group, sub.primary) for flow in app.flows for sub in flow.subs]
"""(group, the topic it commits offsets of): the consumers, then each flow's groups in
order, so that a pass finding them all at lag 0 saw every record handled."""
ALL_CAUGHT_UP = {group: 0 for group, _ in GROUPS}
PROFILE = {p.customer: p for p in PROFILES}


# -- helpers ------------------------------------------------------------------------------
def child_env(url: str) -> dict[str, str]:
    env = dict(os.environ, RIVERBED_BROKER=url, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    env.pop("COLUMNS", None)
    return env


def run_demo(url: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """The demo in a child process; `cwd` holds its local state (`.riverbed/`)."""
    return subprocess.run(
        [sys.executable, "-m", "examples.shop.demo", *args],
        cwd=cwd,
        env=child_env(url),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def run_id_of(stdout: str) -> str:
    found = re.search(r"\brun ([0-9a-f]{8})\b", stdout)
    assert found, f"no run id in the demo's output:\n{stdout}"
    return found.group(1)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/shop.db"


@pytest_asyncio.fixture
async def broker(sqlite_url: str) -> AsyncIterator[Broker]:
    """A second connection to the same file, to read what the example left in it."""
    b = broker_from_url(sqlite_url)
    await b.start()
    yield b
    await b.aclose()


class RunLog:
    """What one run (one run id) left in each topic."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.orders: list[OrderPlaced] = []
        self.order_offsets: dict[str, tuple[int, int]] = {}
        self.payments: Counter[str] = Counter()
        self.invoices: list[InvoiceIssued] = []
        self.dead: list[tuple[OrderPlaced, dict[str, str]]] = []
        self.enriched: list[OrderEnriched] = []
        self.order_payments: list[OrderPayment] = []

    @classmethod
    async def read(cls, broker: Broker, run_id: str) -> RunLog:
        log = cls(run_id)
        for rec in await read_topic(broker, orders.name):
            order: OrderPlaced = orders.codec.decode(rec.value)
            if order.run_id == run_id:
                log.orders.append(order)
                log.order_offsets[order.order_id] = (rec.partition, rec.offset)
        for rec in await read_topic(broker, payments.name):
            payment: PaymentCaptured = payments.codec.decode(rec.value)
            if payment.run_id == run_id:
                log.payments[payment.order_id] += 1
        for rec in await read_topic(broker, invoices.name):
            invoice: InvoiceIssued = invoices.codec.decode(rec.value)
            if invoice.run_id == run_id:
                log.invoices.append(invoice)
        for rec in await read_topic(broker, DLQ):
            dead: OrderPlaced = orders.codec.decode(rec.value)
            if dead.run_id == run_id:
                log.dead.append((dead, rec.headers))
        log.enriched = [e for e in await decoded(broker, flows.enriched) if e.run_id == run_id]
        log.order_payments = [
            m for m in await decoded(broker, flows.order_payments) if m.run_id == run_id
        ]
        return log

    @property
    def poison_ids(self) -> set[str]:
        return {o.order_id for o in self.orders if o.sku == POISON_SKU}

    @property
    def paid_ids(self) -> set[str]:
        return {o.order_id for o in self.orders} - self.poison_ids

    def invoices_per_order(self) -> Counter[str]:
        return Counter(i.order_id for i in self.invoices)

    def matched_per_order(self) -> Counter[str]:
        return Counter(m.order_id for m in self.order_payments if m.paid)

    def complete(self) -> bool:
        dead = {o.order_id for o, _ in self.dead}
        enriched = {e.order_id for e in self.enriched}
        return (
            set(self.invoices_per_order()) >= self.paid_ids
            and dead >= self.poison_ids
            and enriched >= {o.order_id for o in self.orders}
            and set(self.matched_per_order()) >= self.paid_ids
        )

    def assert_exactly_once(self, expected_orders: int) -> None:
        """Each paid order: one payment, one invoice of the right amount; poison: one DLQ."""
        assert len(self.orders) == expected_orders
        assert len(self.poison_ids) == 1
        assert self.payments == Counter(dict.fromkeys(self.paid_ids, 1))
        assert self.invoices_per_order() == Counter(dict.fromkeys(self.paid_ids, 1))
        totals = {o.order_id: o.total_cents for o in self.orders}
        for inv in self.invoices:
            assert inv.amount_cents == totals[inv.order_id]
            assert inv.invoice_no == f"INV-{inv.order_id}"
        assert len(self.dead) == 1
        order, headers = self.dead[0]
        assert order.order_id in self.poison_ids
        partition, offset = self.order_offsets[order.order_id]
        assert headers["dlq.error.type"] == "PaymentDeclined"
        assert "card declined" in headers["dlq.error.message"]
        assert headers["dlq.attempts"] == "3"
        assert headers["dlq.topic"] == "orders"
        assert headers["dlq.group"] == "payments"
        assert (headers["dlq.partition"], headers["dlq.offset"]) == (str(partition), str(offset))
        self.assert_flows_once()

    def assert_flows_once(self) -> None:
        """Each order enriched once, with its customer's profile; each paid order matched
        with its payment once; none declared unpaid (that takes 10 minutes)."""
        by_id = {o.order_id: o for o in self.orders}
        assert Counter(e.order_id for e in self.enriched) == Counter(dict.fromkeys(by_id, 1))
        for e in self.enriched:
            order, profile = by_id[e.order_id], PROFILE[e.customer]
            assert (e.customer, e.customer_name, e.country) == (
                order.customer,
                profile.name,
                profile.country,
            )
            assert e.total_cents == order.total_cents
        assert self.matched_per_order() == Counter(dict.fromkeys(self.paid_ids, 1))
        for m in self.order_payments:
            assert m.paid, f"order {m.order_id} declared unpaid within the test"
            assert (m.payment_id, m.amount_cents) == (f"pay-{m.order_id}", m.total_cents)
            assert m.total_cents == by_id[m.order_id].total_cents


async def decoded(broker: Broker, topic: Any) -> list[Any]:
    return [topic.codec.decode(rec.value) for rec in await read_topic(broker, topic.name)]


async def assert_aggregates_match_the_orders(broker: Broker) -> None:
    """Revenue per customer per minute and each customer's sessions, as the flows
    published them, are what every order in the log adds up to (all runs: the customers
    are the same in each). Nothing came too late to count."""
    placed = [
        (rec.timestamp, orders.codec.decode(rec.value))
        for rec in await read_topic(broker, orders.name)
    ]
    minute = round(REVENUE_WINDOW.size * 1000)
    want_revenue: Counter[tuple[str, int]] = Counter()
    for ts, order in placed:
        want_revenue[(order.customer, ts - ts % minute)] += order.total_cents
    revenue: list[CustomerRevenue] = await decoded(broker, flows.revenue)
    latest = {(r.customer, r.start): r.revenue_cents for r in revenue}  # in offset order
    assert latest == dict(want_revenue)
    finals = [r for r in revenue if r.final]
    assert all(r.revenue_cents == want_revenue[(r.customer, r.start)] for r in finals)

    gap = round(SESSION_WINDOW.gap * 1000)
    times: dict[str, list[int]] = {}
    for ts, order in placed:
        times.setdefault(order.customer, []).append(ts)
    want_sessions = {
        (customer, start): (end, n)
        for customer, ts_list in times.items()
        for start, end, n in sessions_of(ts_list, gap)
    }
    assert replay_sessions(await decoded(broker, flows.sessions)) == want_sessions
    for late in ("shop.by-customer.late", "shop.payment-match.late"):
        assert await read_topic(broker, late) == []


def sessions_of(times: list[int], gap: int) -> list[tuple[int, int, int]]:
    """(start, end, orders) of the runs of `times` no more than `gap` ms apart."""
    out: list[tuple[int, int, int]] = []
    for ts in sorted(times):
        if out and ts - (out[-1][1] - 1) <= gap:
            start, end, n = out[-1]
            out[-1] = (start, max(end, ts + 1), n + 1)
        else:
            out.append((ts, ts + 1, 1))
    return out


def replay_sessions(changes: list[CustomerSession]) -> dict[tuple[str, int], tuple[int, int]]:
    """The sessions that stand after applying every change: (customer, start) -> (end, n)."""
    state: dict[tuple[str, int], tuple[int, int]] = {}
    for c in changes:
        if c.removed:
            del state[(c.customer, c.start)]
        else:
            state[(c.customer, c.start)] = (c.end, c.orders)
    return state


async def lags(broker: Broker) -> dict[str, int]:
    """Group -> records stored past its committed offsets (counted: offsets have gaps on
    some backends)."""
    return {group: sum((await group_lag(broker, group, topic)).values()) for group, topic in GROUPS}


# -- the demo -------------------------------------------------------------------------------
async def test_demo_runs_to_completion_and_reruns_cleanly(sqlite_url: str) -> None:
    first = await asyncio.to_thread(run_demo, sqlite_url, "--orders", "40", "--rate", "0")
    assert first.returncode == 0, first.stdout + first.stderr
    second = await asyncio.to_thread(run_demo, sqlite_url, "--orders", "25", "--rate", "200")
    assert second.returncode == 0, second.stdout + second.stderr

    assert "invoices: 39 for 39 paid orders, 0 duplicates" in first.stdout
    assert "invoices: 24 for 24 paid orders, 0 duplicates" in second.stdout
    assert "enriched-orders: 40 of 40 orders carry their customer's name" in first.stdout
    assert "order-payments: 24 payments matched to 24 paid orders" in second.stdout
    assert "Ada Lovelace" in second.stdout  # the per-customer table, from the flows' tables
    assert "riverbed dlq list orders --broker " + sqlite_url in first.stdout
    assert "Traceback" not in first.stderr + second.stderr

    broker = broker_from_url(sqlite_url)
    await broker.start()
    try:
        for proc, n in ((first, 40), (second, 25)):
            log = await RunLog.read(broker, run_id_of(proc.stdout))
            log.assert_exactly_once(n)
            poison = log.dead[0][0].order_id
            assert f"order {poison} (orders[" in proc.stdout
        # The demo waits for the groups to commit and stops cleanly: nothing left behind.
        assert await lags(broker) == ALL_CAUGHT_UP
        await assert_aggregates_match_the_orders(broker)
    finally:
        await broker.aclose()

    # The CLI commands the summary suggests work as printed.
    for command in suggested_commands(second.stdout):
        proc = await asyncio.to_thread(run_cli, command)
        assert proc.returncode == 0, f"{command}:\n{proc.stdout}{proc.stderr}"
        if command[:2] == ["tail", "invoices"]:
            assert len(proc.stdout.splitlines()) == 39 + 24


def suggested_commands(stdout: str) -> list[list[str]]:
    """The `riverbed ...` lines of the summary, but not `run` (it runs until stopped)."""
    found = re.findall(r"^\s+riverbed (.+)$", stdout, flags=re.MULTILINE)
    commands = [shlex.split(line) for line in found if not line.startswith("run ")]
    assert len(commands) >= 3, stdout
    return commands


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200")
    env.pop("RIVERBED_BROKER", None)  # the commands name their broker
    return subprocess.run(
        [sys.executable, "-m", "riverbed", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_on_the_memory_broker() -> None:
    proc = run_demo("memory://", "--orders", "30", "--rate", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "invoices: 29 for 29 paid orders, 0 duplicates" in proc.stdout
    assert "dead letters in orders.dlq: 1" in proc.stdout
    assert "PaymentDeclined: card declined" in proc.stdout


@pytest.mark.parametrize("backend", ["kafka", "nats", "redis"])
async def test_demo_on_each_server_backend(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The same example on Kafka, NATS and Redis, changing only RIVERBED_BROKER.

    Run from a fresh directory: on a server the flows keep a local copy of their state
    under `.riverbed/`, which must not carry over from one server to another."""
    url = request.getfixturevalue(f"{backend}_url")
    args = ("--orders", "20", "--rate", "0")
    proc = await asyncio.to_thread(run_demo, url, *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "invoices: 19 for 19 paid orders, 0 duplicates" in proc.stdout
    assert "PaymentDeclined: card declined" in proc.stdout
    broker = broker_from_url(url)
    await broker.start()
    try:
        log = await RunLog.read(broker, run_id_of(proc.stdout))
        log.assert_exactly_once(20)
        assert await lags(broker) == ALL_CAUGHT_UP
    finally:
        await broker.aclose()


def test_demo_exits_1_when_the_pipeline_does_not_finish_in_time() -> None:
    proc = run_demo("memory://", "--orders", "5", "--rate", "0", "--timeout", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "timed out after 0s" in proc.stdout


def test_demo_skips_payloads_that_are_not_its_own(sqlite_url: str) -> None:
    """A bad record someone else wrote to `orders` is dead-lettered; the demo carries on."""
    bad = run_cli(["produce", "orders", '{"not": "an order"}', "--broker", sqlite_url])
    assert bad.returncode != 0  # without --app the topic does not exist yet ...
    make = run_cli(["topics", "create", "orders", "--partitions", "4", "--broker", sqlite_url])
    assert make.returncode == 0, make.stdout + make.stderr
    bad = run_cli(["produce", "orders", '{"not": "an order"}', "--broker", sqlite_url])
    assert bad.returncode == 0, bad.stdout + bad.stderr  # ... and raw JSON goes in as is
    proc = run_demo(sqlite_url, "--orders", "10", "--rate", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "invoices: 9 for 9 paid orders, 0 duplicates" in proc.stdout


def test_demo_refuses_bad_arguments() -> None:
    proc = run_demo("memory://", "--orders", "0")
    assert proc.returncode == 2
    assert "--orders: must be at least 1" in proc.stderr


# -- `riverbed run` ---------------------------------------------------------------------------
@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """`riverbed run examples.shop.app:app` processes, never left running after the test."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def start_worker(
    procs: list[subprocess.Popen[bytes]], url: str, tmp_path: Path
) -> subprocess.Popen[bytes]:
    out = (tmp_path / f"worker{len(procs)}.log").open("wb")
    with out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "riverbed", "run", "examples.shop.app:app"],
            cwd=REPO,
            env=child_env(url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    procs.append(proc)
    return proc


def output_of(log_path: Path) -> str:
    return log_path.read_text(errors="replace")


async def stop_worker(proc: subprocess.Popen[bytes], log_path: Path, bound: float = 15.0) -> float:
    """SIGTERM; the worker must drain and exit 0 within `bound` seconds."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.to_thread(proc.wait, bound)
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker still running {bound}s after SIGTERM:\n{output_of(log_path)}")
    assert code == 0, f"worker exited with {code}:\n{output_of(log_path)}"
    return time.monotonic() - started


@pytest.mark.timeout(180)
async def test_riverbed_run_consumes_drains_on_sigterm_and_resumes(
    sqlite_url: str,
    broker: Broker,
    workers: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    wait_until: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The example's own app, used as a storefront would: it publishes, consumes nothing.
    monkeypatch.setenv("RIVERBED_BROKER", sqlite_url)
    await app.connect()
    try:
        # 1. A worker handles a first batch completely, and commits all of it.
        worker = start_worker(workers, sqlite_url, tmp_path)
        await place_customers()  # before the orders, which are enriched with them
        first = make_orders(30, "aaaa0001")
        await place_orders(first, rate=0)

        async def caught_up(run_id: str) -> bool:
            log = await RunLog.read(broker, run_id)
            return log.complete() and set((await lags(broker)).values()) == {0}

        await wait_until(lambda: caught_up("aaaa0001"), timeout=60, message="first batch")

        # 2. SIGTERM while a second batch is streaming in: a clean, bounded drain.
        second = make_orders(600, "bbbb0002")
        async with asyncio.TaskGroup() as tg:
            tg.create_task(place_orders(second, rate=300))  # 2 s of orders
            await wait_until(
                lambda: invoiced_some(broker, "bbbb0002"), timeout=60, message="batch flowing"
            )
            await stop_worker(worker, tmp_path / "worker0.log")
        # The first worker stopped while orders kept coming: the second has work left.
        assert len((await RunLog.read(broker, "bbbb0002")).invoices) < 599

        # 3. A new worker resumes from the committed offsets and finishes the batch.
        worker = start_worker(workers, sqlite_url, tmp_path)
        await wait_until(lambda: caught_up("bbbb0002"), timeout=90, message="second batch")
        await stop_worker(worker, tmp_path / "worker1.log")
    finally:
        await app.aclose_broker()

    # Committed offsets equal end offsets, and every order went through exactly once
    # even across the interrupted run: outputs and input offsets commit together.
    assert await lags(broker) == ALL_CAUGHT_UP
    (await RunLog.read(broker, "aaaa0001")).assert_exactly_once(30)
    (await RunLog.read(broker, "bbbb0002")).assert_exactly_once(600)
    # The windows' state moved to the second worker through the changelog, counted once.
    await assert_aggregates_match_the_orders(broker)
    for name in ("worker0.log", "worker1.log"):
        assert "Traceback" not in output_of(tmp_path / name)


async def invoiced_some(broker: Broker, run_id: str) -> bool:
    return len((await RunLog.read(broker, run_id)).invoices) >= 20
