"""The `riverbed` command line, driven in-process with Typer's runner on a sqlite log.

Every test has its own log file under tmp_path, so invocations share state the way
separate shell commands would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from riverbed import App, Record, Retry, TopicSpec
from riverbed.brokers import broker_from_url
from riverbed.brokers.base import Broker
from riverbed.cli import app as cli_app
from riverbed.consumers import H_GROUP, H_REPLAY_GROUP
from riverbed.member import ConsumerOptions
from riverbed.testing.conformance import make_record

Cli = Callable[..., Result]

FAST = ConsumerOptions(commit_interval=0.05, fetch_wait=0.05, heartbeat_interval=0.2)


@pytest.fixture(autouse=True)
def _no_env_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RIVERBED_BROKER", raising=False)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.db"  # tmp_path is absolute: four slashes


@pytest.fixture
def cli(url: str) -> Cli:
    """Run `riverbed ARGS --broker URL`; `broker=None` leaves the option out."""

    def invoke(*args: str, input: str | None = None, broker: str | None = url) -> Result:
        extra = ["--broker", broker] if broker is not None else []
        # Wide enough that rich tables do not fold the cells the tests look for.
        return CliRunner().invoke(cli_app, [*args, *extra], input=input, env={"COLUMNS": "200"})

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def fails(result: Result, *needles: str) -> str:
    """The command failed cleanly: exit 1, one error line on stderr, no traceback."""
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error:")
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in err, err
    return err


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def on_broker(url: str, work: Callable[[Broker], Any]) -> Any:
    """Run `await work(broker)` on a fresh handle of the log."""

    async def go() -> Any:
        b = broker_from_url(url)
        await b.start()
        try:
            return await work(b)
        finally:
            await b.aclose()

    return asyncio.run(go())


@pytest.fixture
def app_module(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable app declaring typed topics; returns its `module:app` target."""
    name = f"cliapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            from riverbed import App, Event

            class Order(Event, type="order.placed"):
                order_id: str
                qty: int

            app = App("shop", broker={url!r})
            orders = app.topic("orders", Order, partitions=2, key=lambda o: o.order_id)
            packed = app.topic("packed", Order, codec="msgpack")
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{name}:app"


# -- help -----------------------------------------------------------------------------------
COMMANDS = [
    ([], "inspect their topics"),
    (["run"], "Run an app"),
    (["produce"], "Publish JSON events"),
    (["tail"], "one JSON object per line"),
    (["topics"], "create and describe topics"),
    (["topics", "list"], "List every topic"),
    (["topics", "create"], "Create a topic"),
    (["topics", "describe"], "start/end offsets"),
    (["groups"], "consumer groups"),
    (["groups", "list"], "List consumer groups"),
    (["groups", "describe"], "lag"),
    (["groups", "reset"], "Reset a group's committed offsets"),
    (["dlq"], "dead letters"),
    (["dlq", "list"], "List the dead letters"),
    (["dlq", "replay"], "riverbed.dlq-replay"),
]


@pytest.mark.parametrize(("command", "purpose"), COMMANDS, ids=lambda c: " ".join(c) or "-")
def test_every_command_has_help_that_says_what_it_does(command: list[str], purpose: str) -> None:
    result = CliRunner().invoke(cli_app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert purpose in " ".join(result.stdout.split())


def test_every_command_is_covered_by_the_help_test() -> None:
    from typer.main import get_command

    def walk(cmd: Any, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    assert sorted(walk(get_command(cli_app), [])) == sorted(c for c, _ in COMMANDS)


def test_a_bare_group_shows_its_help(cli: Cli) -> None:
    result = CliRunner().invoke(cli_app, ["topics"])
    assert "create" in result.output
    assert "Traceback" not in result.output


# -- topics ---------------------------------------------------------------------------------
def test_topics_create_list_describe(cli: Cli) -> None:
    assert (
        "created topic 'orders' with 3" in ok(cli("topics", "create", "orders", "-p", "3")).stdout
    )
    ok(cli("topics", "create", "audit", "--retention", "7d", "--compact"))
    again = ok(cli("topics", "create", "orders", "--partitions", "3")).stdout
    assert "already exists" in again

    listed = json.loads(ok(cli("topics", "list", "--json")).stdout)
    assert [(t["name"], t["partitions"], t["records"]) for t in listed] == [
        ("audit", 1, 0),
        ("orders", 3, 0),
    ]
    assert listed[0]["retention_ms"] == 7 * 86_400_000
    assert listed[0]["compact"] is True
    table = ok(cli("topics", "list")).stdout
    assert "orders" in table
    assert "7d" in table

    ok(cli("produce", "orders", '{"n": 1}', "--key", "a"))
    described = json.loads(ok(cli("topics", "describe", "orders", "--json")).stdout)
    assert described["records"] == 1
    assert [p["partition"] for p in described["partition_offsets"]] == [0, 1, 2]
    assert sum(p["end_offset"] - p["start_offset"] for p in described["partition_offsets"]) == 1
    text = ok(cli("topics", "describe", "orders")).stdout
    assert "start offset" in text
    assert "3 partition(s), 1 record(s)" in text


def test_topics_create_refuses_another_partition_count(cli: Cli) -> None:
    ok(cli("topics", "create", "orders", "-p", "2"))
    fails(cli("topics", "create", "orders", "-p", "4"), "orders")


def test_topics_create_checks_name_and_retention(cli: Cli) -> None:
    fails(cli("topics", "create", "bad[name]"), "invalid topic name")
    fails(cli("topics", "create", "t", "--retention", "a week"), "bad --retention")


# -- produce and tail -----------------------------------------------------------------------
def test_produce_from_argument_and_stdin_then_tail_returns_exactly_those(cli: Cli) -> None:
    ok(cli("topics", "create", "orders", "-p", "3"))
    ok(cli("produce", "orders", '{"n": 0}', "--key", "k0"))
    piped = '{"n": 1}\n\n{"n": 2, "tags": ["x"]}\n"text"\n'
    assert "produced 3 record(s)" in ok(cli("produce", "orders", input=piped)).stderr

    got = lines(ok(cli("tail", "orders")))
    assert sorted(json.dumps(r["data"]) for r in got) == sorted(
        json.dumps(d) for d in [{"n": 0}, {"n": 1}, {"n": 2, "tags": ["x"]}, "text"]
    )
    first = next(r for r in got if r["data"] == {"n": 0})
    assert set(first) == {
        "topic", "partition", "offset", "id", "type", "source", "time", "key", "headers", "data"
    }  # fmt: skip
    assert first["topic"] == "orders"
    assert first["key"] == "k0"
    assert first["type"] == "orders"
    assert first["headers"] == {}
    assert first["time"].endswith("Z")
    when = datetime.fromisoformat(first["time"])
    assert abs(when.timestamp() - time.time()) < 60
    assert len({r["id"] for r in got}) == 4
    # A second tail without --follow stops at the end again: same records, nothing more.
    assert lines(ok(cli("tail", "orders"))) == got


def test_produce_from_a_file_with_key_field(cli: Cli, tmp_path: Path) -> None:
    ok(cli("topics", "create", "orders", "-p", "2"))
    path = tmp_path / "orders.jsonl"
    path.write_text("".join(json.dumps({"id": f"o{i}", "n": i}) + "\n" for i in range(25)))
    ok(cli("produce", "orders", "--file", str(path), "--key-field", "id"))
    got = lines(ok(cli("tail", "orders")))
    assert sorted(r["data"]["n"] for r in got) == list(range(25))
    assert all(r["key"] == r["data"]["id"] for r in got)
    # Per partition, the file's order is kept.
    for p in (0, 1):
        ns = [r["data"]["n"] for r in got if r["partition"] == p]
        assert ns == sorted(ns)


def test_produce_missing_key_field_names_the_line(cli: Cli) -> None:
    ok(cli("topics", "create", "orders"))
    result = cli("produce", "orders", "--key-field", "id", input='{"id": "a"}\n{"n": 1}\n')
    fails(result, "line 2", "'id'")
    assert lines(ok(cli("tail", "orders"))) == []


def test_tail_from_offset_and_partition(cli: Cli) -> None:
    ok(cli("topics", "create", "t", "-p", "2"))
    ok(cli("produce", "t", "--key", "same", input="".join(f"{i}\n" for i in range(5))))
    part = lines(ok(cli("tail", "t")))[0]["partition"]
    got = lines(ok(cli("tail", "t", "--offset", "3", "--partition", str(part))))
    assert [(r["offset"], r["data"]) for r in got] == [(3, 3), (4, 4)]
    assert lines(ok(cli("tail", "t", "--offset", "3", "--partition", str(1 - part)))) == []
    assert [r["data"] for r in lines(ok(cli("tail", "t", "--limit", "2")))] == [0, 1]
    fails(cli("tail", "t", "--partition", "7"), "no partition 7")


def test_tail_since_a_duration_or_a_time(cli: Cli, url: str) -> None:
    ok(cli("topics", "create", "t"))
    now = int(time.time() * 1000)
    hour = 3_600_000

    async def seed(b: Broker) -> None:
        await b.append("t", [make_record(value=b'"old"', timestamp=now - 3 * hour)])
        await b.append("t", [make_record(value=b'"recent"', timestamp=now - 60_000)])

    on_broker(url, seed)
    assert [r["data"] for r in lines(ok(cli("tail", "t", "--since", "10m")))] == ["recent"]
    assert [r["data"] for r in lines(ok(cli("tail", "t", "--since", "4h")))] == ["old", "recent"]
    two_hours_ago = datetime.fromtimestamp((now - 2 * hour) / 1000, UTC).isoformat()
    assert [r["data"] for r in lines(ok(cli("tail", "t", "--since", two_hours_ago)))] == ["recent"]
    fails(cli("tail", "t", "--since", "yesterday"), "bad --since 'yesterday'")


def test_tail_filters_by_key(cli: Cli) -> None:
    ok(cli("topics", "create", "t", "-p", "3"))
    for key in ("a", "b", "a", "c"):
        ok(cli("produce", "t", json.dumps({"key": key}), "--key", key))
    got = lines(ok(cli("tail", "t", "--key", "a")))
    assert [(r["key"], r["data"]) for r in got] == [("a", {"key": "a"})] * 2


def test_tail_gives_payloads_that_are_not_json_as_base64(cli: Cli, url: str) -> None:
    ok(cli("topics", "create", "raw"))
    on_broker(url, lambda b: b.append("raw", [make_record(value=b"\x00\xffbin", key=b"k")]))
    (rec,) = lines(ok(cli("tail", "raw")))
    assert "data" not in rec
    assert base64.b64decode(rec["data_base64"]) == b"\x00\xffbin"
    assert rec["type"] == "riverbed.test"


def test_tail_offset_and_since_exclude_each_other(cli: Cli) -> None:
    ok(cli("topics", "create", "t"))
    result = cli("tail", "t", "--offset", "1", "--since", "1m")
    assert result.exit_code == 2
    assert "only one of" in result.output


# -- bad input --------------------------------------------------------------------------------
def test_malformed_json_fails_with_the_line_and_writes_nothing(cli: Cli) -> None:
    ok(cli("topics", "create", "t"))
    err = fails(cli("produce", "t", input='{"ok": 1}\n{"ok": 2}\n{"broken": \n'), "line 3")
    assert "invalid JSON" in err
    assert lines(ok(cli("tail", "t"))) == []
    fails(cli("produce", "t", "{nope"), "invalid JSON", "nothing was written")
    assert lines(ok(cli("tail", "t"))) == []


def test_a_bad_line_stops_at_its_batch(cli: Cli) -> None:
    ok(cli("topics", "create", "t"))
    err = fails(cli("produce", "t", "--batch-size", "2", input="1\n2\n3\n[\n5\n"), "line 4")
    assert "2 record(s) from earlier lines were written" in err
    assert [r["data"] for r in lines(ok(cli("tail", "t")))] == [1, 2]


def test_produce_with_the_app_schema_validates_and_names_the_field(
    cli: Cli, app_module: str
) -> None:
    bad = cli("produce", "orders", '{"order_id": "o1", "qty": "many"}', "--app", app_module)
    fails(bad, "qty", "Order")
    piped = '{"order_id": "o1", "qty": 1}\n{"order_id": "o2"}\n'
    fails(cli("produce", "orders", "--app", app_module, input=piped), "line 2", "qty")

    ok(cli("produce", "orders", '{"order_id": "o1", "qty": 2}', "--app", app_module))
    (rec,) = lines(ok(cli("tail", "orders")))
    assert rec["type"] == "order.placed"
    assert rec["source"] == "shop"
    assert rec["key"] == "o1"  # the topic's key function
    assert rec["data"] == {"order_id": "o1", "qty": 2}


def test_the_app_gives_the_broker_and_the_codec(cli: Cli, app_module: str) -> None:
    # No --broker: the app's URL is used; a msgpack topic reads back as JSON with --app.
    ok(cli("produce", "packed", '{"order_id": "p", "qty": 1}', "--app", app_module, broker=None))
    (rec,) = lines(ok(cli("tail", "packed", "--app", app_module, broker=None)))
    assert rec["data"] == {"order_id": "p", "qty": 1}
    (raw,) = lines(ok(cli("tail", "packed")))
    assert "data_base64" in raw


def test_unknown_topic_fails(cli: Cli) -> None:
    fails(cli("produce", "nope", "{}"), "'nope'", "topics create")
    fails(cli("tail", "nope"), "'nope'")
    fails(cli("topics", "describe", "nope"), "'nope'")
    fails(cli("dlq", "list", "nope"), "'nope'")


@pytest.mark.parametrize(
    ("broker", "needle"),
    [("kafka-ish://host", "unknown broker scheme"), ("no-scheme", "no scheme")],
)
def test_bad_broker_url_fails(cli: Cli, broker: str, needle: str) -> None:
    fails(cli("topics", "list", broker=broker), needle)


def test_no_broker_says_what_to_pass(cli: Cli) -> None:
    fails(cli("topics", "list", broker=None), "--broker", "--app")


def test_the_env_var_names_the_broker(cli: Cli, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIVERBED_BROKER", url)
    ok(cli("topics", "create", "from-env", broker=None))
    assert "from-env" in ok(cli("topics", "list")).stdout


def test_unknown_app_target_fails(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fails(cli("tail", "t", "--app", "no_such_module_xyz:app"), "cannot import")
    fails(cli("tail", "t", "--app", "missing-colon"), "module:app")
    fails(cli("run", "no_such_module_xyz:app"), "cannot import")


def test_memory_broker_works_within_one_invocation() -> None:
    result = CliRunner().invoke(cli_app, ["topics", "create", "t", "--broker", "memory://"])
    assert "created topic 't'" in ok(result).stdout


# -- groups -----------------------------------------------------------------------------------
def test_groups_reset_then_describe_shows_lag(cli: Cli) -> None:
    ok(cli("topics", "create", "t", "-p", "2"))
    ok(cli("produce", "t", "--key", "k", input="".join(f"{i}\n" for i in range(5))))
    part = lines(ok(cli("tail", "t")))[0]["partition"]

    ok(cli("groups", "reset", "g", "--topic", "t", "--to-offset", "2", "-p", str(part)))
    described = json.loads(ok(cli("groups", "describe", "g", "--json")).stdout)
    rows = {r["partition"]: r for r in described["partitions"]}
    assert rows[part]["committed"] == 2
    assert rows[part]["end_offset"] == 5
    assert rows[part]["lag"] == 3
    assert rows[1 - part]["committed"] is None
    assert described["lag"] == 3
    assert described["members"] == []
    table = ok(cli("groups", "describe", "g")).stdout
    assert "lag 3" in table

    ok(cli("groups", "reset", "g", "--topic", "t", "--to-latest"))
    assert json.loads(ok(cli("groups", "describe", "g", "--json")).stdout)["lag"] == 0
    reset = ok(cli("groups", "reset", "g", "--topic", "t", "--to-earliest")).stdout
    assert "5" in reset  # the old offset is shown
    assert json.loads(ok(cli("groups", "describe", "g", "--json")).stdout)["lag"] == 5
    ok(cli("groups", "reset", "g", "--topic", "t", "--to-time", "1h"))
    assert json.loads(ok(cli("groups", "describe", "g", "--json")).stdout)["lag"] == 5
    ok(cli("groups", "reset", "g", "--topic", "t", "--to-offset", "99"))  # kept in range
    assert json.loads(ok(cli("groups", "describe", "g", "--json")).stdout)["lag"] == 0

    listed = json.loads(ok(cli("groups", "list", "--json")).stdout)
    assert listed == [{"group": "g", "generation": 0, "lag": 0, "members": 0, "topics": ["t"]}]
    assert "g" in ok(cli("groups", "list")).stdout


def test_groups_reset_needs_exactly_one_target(cli: Cli) -> None:
    ok(cli("topics", "create", "t"))
    assert cli("groups", "reset", "g", "--topic", "t").exit_code == 2
    assert (
        cli("groups", "reset", "g", "--topic", "t", "--to-latest", "--to-earliest").exit_code == 2
    )


def test_groups_reset_refuses_a_group_with_live_members(cli: Cli, url: str) -> None:
    ok(cli("topics", "create", "t"))
    on_broker(url, lambda b: b.join_group("busy", "m1", ["t"], session_timeout=60))
    fails(cli("groups", "reset", "busy", "--topic", "t", "--to-earliest"), "live member")
    described = json.loads(ok(cli("groups", "describe", "busy", "--json")).stdout)
    assert [m["member_id"] for m in described["members"]] == ["m1"]
    assert described["partitions"][0]["owner"] == "m1"
    assert "m1" in ok(cli("groups", "describe", "busy")).stdout


def test_groups_describe_unknown_group_fails(cli: Cli) -> None:
    fails(cli("groups", "describe", "ghost"), "no consumer group 'ghost'")


# -- dead letters -----------------------------------------------------------------------------
async def _run_until(app: App, done: Callable[[Broker], Any], timeout: float = 20) -> None:
    async with app:
        deadline = time.monotonic() + timeout
        while not await done(app.broker):
            assert time.monotonic() < deadline, "the app did not get there in time"
            await asyncio.sleep(0.05)


def _shop(url: str, fragile: Callable[[dict[str, Any]], None], audited: list[Any]) -> App:
    app = App("shop", broker=url, consumer_options=FAST)
    orders = app.topic("orders", dict, partitions=2)

    @app.consumer(orders, group="shop.fragile", retry=Retry(attempts=2, backoff=0))
    def fragile_handler(event: dict[str, Any]) -> None:
        fragile(event)

    @app.consumer(orders, group="shop.audit")
    def audit(record: Record[dict[str, Any]]) -> None:
        audited.append(record.id)

    return app


async def _lag(b: Broker, group: str, topic: str) -> int:
    info = await b.describe_topic(topic)
    committed = await b.committed(group, topic)
    return sum(p.end_offset - committed.get(p.partition, 0) for p in info.partitions)


def test_dlq_list_and_replay(cli: Cli, url: str) -> None:
    def refuse(event: dict[str, Any]) -> None:
        if event["n"] % 2:
            raise ValueError(f"odd order {event['n']}")

    audited: list[Any] = []
    shop = _shop(url, refuse, audited)
    on_broker(url, lambda b: b.create_topic(TopicSpec("orders", 2)))
    ok(cli("produce", "orders", "--key-field", "k", input="".join(
        json.dumps({"n": i, "k": f"k{i}"}) + "\n" for i in range(4)
    )))  # fmt: skip

    async def settled(b: Broker) -> bool:
        return await _lag(b, "shop.fragile", "orders") == 0 and len(audited) == 4

    asyncio.run(_run_until(shop, settled))

    dead = json.loads(ok(cli("dlq", "list", "orders", "--json")).stdout)
    assert sorted(e["error_message"] for e in dead) == ["odd order 1", "odd order 3"]
    assert {e["error_type"] for e in dead} == {"ValueError"}
    assert {e["attempts"] for e in dead} == {2}
    assert {e["group"] for e in dead} == {"shop.fragile"}
    assert {e["topic"] for e in dead} == {"orders"}
    assert not any(e["replayed"] for e in dead)
    originals = {r["id"]: r for r in lines(ok(cli("tail", "orders")))}
    for e in dead:
        assert originals[e["id"]]["offset"] == e["original_offset"]
        assert originals[e["id"]]["partition"] == e["original_partition"]
    table = ok(cli("dlq", "list", "orders")).stdout
    assert "odd order" in table
    assert "2 dead letter(s)" in table

    replayed = ok(cli("dlq", "replay", "orders", "--all")).stdout
    assert "replayed 2 dead letter(s)" in replayed
    assert "replayed 0" in ok(cli("dlq", "replay", "orders", "--all")).stdout
    assert all(e["replayed"] for e in json.loads(ok(cli("dlq", "list", "orders", "--json")).stdout))

    after = lines(ok(cli("tail", "orders")))
    assert len(after) == 6
    again = [r for r in after if list(r["headers"])]
    assert sorted(r["id"] for r in again) == sorted(e["id"] for e in dead)
    for r in again:
        first = originals[r["id"]]
        assert r["headers"] == {H_REPLAY_GROUP: "shop.fragile"}
        for field in ("type", "source", "key", "data", "partition", "time"):
            assert r[field] == first[field], field

    # Fixed: the failed group handles the replayed records, the audit group skips them.
    fixed_calls: list[dict[str, Any]] = []
    fixed = _shop(url, fixed_calls.append, audited)

    async def drained(b: Broker) -> bool:
        return (
            await _lag(b, "shop.fragile", "orders") == 0
            and await _lag(b, "shop.audit", "orders") == 0
        )

    asyncio.run(_run_until(fixed, drained))
    assert sorted(e["n"] for e in fixed_calls) == [1, 3]
    assert len(audited) == 4

    # --id replays one again, even though --all did it before.
    one = dead[0]["id"]
    assert "replayed 1 dead letter(s)" in ok(cli("dlq", "replay", "orders", "--id", one)).stdout
    assert [r["id"] for r in lines(ok(cli("tail", "orders")))].count(one) == 3
    fails(cli("dlq", "replay", "orders", "--id", "missing-id"), "missing-id", "nothing replayed")
    assert cli("dlq", "replay", "orders").exit_code == 2


def test_dlq_from_records_appended_directly(cli: Cli, url: str) -> None:
    headers = {
        "trace": "t1",
        "dlq.error.type": "DeadLetter",
        "dlq.error.message": "no stock",
        "dlq.attempts": "1",
        "dlq.topic": "orders",
        "dlq.partition": "0",
        "dlq.offset": "7",
        H_GROUP: "shop.ship",
    }
    dead = make_record(0, key=b"o1", value=b'{"id": "o1"}', headers=headers)

    async def seed(b: Broker) -> None:
        await b.create_topic(TopicSpec("orders", 1))
        await b.create_topic(TopicSpec("orders.dlq", 1))
        await b.append("orders.dlq", [dead])

    on_broker(url, seed)
    (entry,) = json.loads(ok(cli("dlq", "list", "orders", "--json")).stdout)
    assert (entry["id"], entry["error_type"], entry["original_offset"]) == (
        dead.id,
        "DeadLetter",
        7,
    )
    ok(cli("dlq", "replay", "orders", "--id", dead.id))
    (rec,) = lines(ok(cli("tail", "orders")))
    assert rec["headers"] == {"trace": "t1", H_REPLAY_GROUP: "shop.ship"}
    assert (rec["id"], rec["key"], rec["data"]) == (dead.id, "o1", {"id": "o1"})


def test_dlq_of_a_topic_without_dead_letters(cli: Cli) -> None:
    ok(cli("topics", "create", "calm"))
    fails(cli("dlq", "list", "calm"), "no dead-letter topic 'calm.dlq'")


# -- no side effects ----------------------------------------------------------------------------
def test_importing_the_cli_configures_nothing() -> None:
    code = textwrap.dedent(
        """
        import logging, sys
        import riverbed
        assert "riverbed.cli" not in sys.modules and "typer" not in sys.modules
        import riverbed.cli
        assert logging.getLogger().handlers == [], logging.getLogger().handlers
        assert logging.getLogger("riverbed").level == logging.NOTSET
        assert sys.excepthook is sys.__excepthook__
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_timestamps_in_records_are_utc(cli: Cli, url: str) -> None:
    ok(cli("topics", "create", "t"))
    on_broker(url, lambda b: b.append("t", [make_record(value=b"1", timestamp=1_700_000_000_123)]))
    assert lines(ok(cli("tail", "t")))[0]["time"] == "2023-11-14T22:13:20.123Z"
