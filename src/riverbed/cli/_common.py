"""What every command shares: options, broker resolution, error reporting, time parsing.

Errors are turned into one red line on stderr and exit code 1 in exactly one place,
`RiverbedGroup.invoke`, which wraps every command of the tree. Usage errors stay
Typer's (exit code 2).
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from riverbed.errors import ConfigError, RiverbedError

if TYPE_CHECKING:
    from typer import _click as click  # the Click that Typer vendors: TyperGroup's types

    from riverbed.app import App
    from riverbed.brokers.base import Broker
    from riverbed.topics import Topic

__all__ = [
    "AppOpt",
    "BrokerOpt",
    "JsonOpt",
    "RiverbedGroup",
    "Target",
    "fail",
    "open_broker",
    "parse_duration",
    "parse_time",
    "print_json",
    "run",
]

T = TypeVar("T")

BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker",
        "-b",
        envvar="RIVERBED_BROKER",
        help="Broker URL, e.g. sqlite:///.riverbed/shop.db. Default: $RIVERBED_BROKER, "
        "else the broker of --app.",
        show_default=False,
    ),
]
AppOpt = Annotated[
    str | None,
    typer.Option(
        "--app",
        "-a",
        help="The app as module:attribute; gives the topics' schemas and its broker URL.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def stderr() -> Console:
    """A console on the current stderr (looked up per call, so test runners can swap it)."""
    return Console(file=sys.stderr, soft_wrap=True, highlight=False)


def stdout() -> Console:
    return Console(file=sys.stdout, soft_wrap=True, highlight=False)


class CommandError(Exception):
    """A mistake the CLI itself found; reported like a riverbed error."""


def fail(message: str) -> NoReturn:
    """Stop the command with one error line (exit code 1)."""
    raise CommandError(message)


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


class RiverbedGroup(TyperGroup):
    """The root command group: reports expected errors as one line, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # Typer quiets a closed pipe (`riverbed tail t | head`)
            _report(exc)
        except (RiverbedError, ValueError, CommandError) as exc:
            _report(exc)


def _report(exc: BaseException) -> NoReturn:
    stderr().print(f"[bold red]error:[/] [red]{escape(_one_line(exc))}[/]")
    raise typer.Exit(1)


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run one command's coroutine on a fresh event loop."""

    async def main() -> T:
        return await make()

    return asyncio.run(main())


# -- broker and app -------------------------------------------------------------------
@dataclass
class Target:
    """Where a command works: the broker URL and, with --app, the declared app."""

    url: str
    app: App | None

    @classmethod
    def resolve(cls, broker: str | None, app: str | None) -> Target:
        """--broker (or $RIVERBED_BROKER) wins; else the app's URL; else an error."""
        loaded = None
        if app:
            from riverbed.runtime import load_app

            loaded = load_app(app)
        if broker:
            return cls(broker, loaded)
        if loaded is not None:
            return cls(loaded.broker_url(), loaded)
        raise ConfigError(
            "no broker given: pass --broker URL (or set RIVERBED_BROKER), or --app "
            "module:app to use the app's broker"
        )

    def declared(self, topic: str) -> Topic[Any] | None:
        """The app's `Topic` handle for `topic`, or None (no --app, or not declared)."""
        if self.app is None:
            return None
        return self.app.topics.get(topic)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Broker]:
        async with open_broker(self.url) as broker:
            yield broker


@asynccontextmanager
async def open_broker(url: str) -> AsyncIterator[Broker]:
    """Start the broker a URL names and close it afterwards."""
    from riverbed.brokers import broker_from_url

    broker = broker_from_url(url)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.aclose()


# -- time -------------------------------------------------------------------------------
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str, *, what: str = "duration") -> float:
    """'90s', '10m', '1h30m', '7d', '2w' -> seconds."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ConfigError(
            f"bad {what} {text!r}: use a number with a unit (ms, s, m, h, d, w), "
            "e.g. 30s, 10m, 1h30m, 7d"
        )
    return sum(float(n) * _UNITS[u] for n, u in parts)


def parse_time(text: str, *, option: str) -> int:
    """A duration ago ('10m') or an ISO-8601 time (UTC unless it says) -> epoch ms."""
    try:
        seconds = parse_duration(text)
    except ConfigError:
        pass
    else:
        return int((datetime.now(UTC).timestamp() - seconds) * 1000)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"bad {option} {text!r}: give a duration ago (30s, 10m, 2h, 7d) or an "
            "ISO-8601 time such as 2024-05-01T12:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def rfc3339(ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds, e.g. 2024-05-01T12:00:00.000Z."""
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def format_retention(ms: int | None) -> str:
    if ms is None:
        return "forever"
    seconds = ms / 1000
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{ms}ms"


def print_json(obj: Any) -> None:
    """Machine output: one JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
