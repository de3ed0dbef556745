"""`riverbed produce`: JSON in, records out, in validated batches."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import msgspec
import typer

from riverbed.app import App
from riverbed.cli._common import AppOpt, BrokerOpt, Target, fail, run, stderr
from riverbed.codecs import make_codec
from riverbed.errors import DecodeError, EncodeError, RecordTooLarge, SchemaError, UnknownTopic
from riverbed.events import Record
from riverbed.topics import Topic

if TYPE_CHECKING:
    from riverbed.brokers.base import Broker, TopicInfo

__all__ = ["produce_command"]

BATCH = 1000
SOURCE = "riverbed-cli"


class _Builder:
    """Turns parsed JSON into records for one topic through the app producer's `build`.

    With a declared schema the JSON is validated into an event first; otherwise (or for
    a bytes topic) the JSON text itself is the payload. The broker's partition count is
    used, so keys land where the running app would put them.
    """

    def __init__(
        self,
        info: TopicInfo,
        declared: Topic[Any] | None,
        key: str | None,
        key_field: str | None,
    ) -> None:
        self.encoder = msgspec.json.Encoder()
        self.parse: Callable[[Any], Any]
        self.topic: Topic[Any]
        if declared is not None and declared.schema is not bytes:
            self.topic = Topic(declared.app, info.spec, declared.codec, declared.key_func)
            self.parse = declared.codec.from_builtins
        else:
            app = declared.app if declared is not None else App(SOURCE, broker="memory://")
            self.topic = Topic(app, info.spec, make_codec(bytes))
            self.parse = self.encoder.encode
        self.key = key
        self.key_field = key_field

    def build(self, obj: Any) -> Record[Any]:
        key: Any = self.key
        if key is None and self.key_field is not None:
            key = self._field_key(obj)
        return self.topic.app.producer.build(self.topic, self.parse(obj), key=key)

    def _field_key(self, obj: Any) -> Any:
        if not isinstance(obj, dict) or self.key_field not in obj:
            raise DecodeError(f"--key-field {self.key_field!r} is missing from the JSON object")
        value = obj[self.key_field]
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise DecodeError(
                f"--key-field {self.key_field!r} must be a string or an integer, "
                f"got {type(value).__name__}"
            )
        return value


def _lines(
    stream: Iterable[bytes | str], progress: _FileProgress | None
) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(stream, start=1):
        if progress is not None:
            progress.advance(len(raw))
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            raise _Failed(number, f"not UTF-8 text: {exc}") from None
        if text.strip():
            yield number, text


def _batches(lines: Iterable[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    batch: list[tuple[int, str]] = []
    for item in lines:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Failed(Exception):
    def __init__(self, line: int, message: str) -> None:
        self.line = line
        super().__init__(message)


def _build_batch(builder: _Builder, batch: list[tuple[int, str]]) -> list[Record[Any]]:
    records = []
    for number, text in batch:
        try:
            obj = msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            raise _Failed(number, f"invalid JSON: {exc}") from None
        try:
            records.append(builder.build(obj))
        except (SchemaError, RecordTooLarge, EncodeError) as exc:
            raise _Failed(number, str(exc)) from None
    return records


class _FileProgress:
    """A rich progress bar over a file's bytes, shown only on a terminal."""

    def __init__(self, path: Path) -> None:
        from rich.progress import Progress

        console = stderr()
        self.progress = Progress(console=console, transient=True, disable=not console.is_terminal)
        self.task = self.progress.add_task(f"producing {path.name}", total=path.stat().st_size)

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def __enter__(self) -> _FileProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def produce_command(
    topic: Annotated[str, typer.Argument(help="The topic to publish to.")],
    payload: Annotated[
        str | None,
        typer.Argument(
            help="One JSON event. Without it, read one JSON value per line.", show_default=False
        ),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", "-k", help="Key for every record.", show_default=False)
    ] = None,
    key_field: Annotated[
        str | None,
        typer.Option(
            help="Take each record's key from this field of the JSON object.", show_default=False
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            exists=True,
            dir_okay=False,
            readable=True,
            help="Read JSON lines from this file (with a progress bar).",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Records per write; a bad line stops its whole batch.")
    ] = BATCH,
    broker: BrokerOpt = None,
    app: AppOpt = None,
) -> None:
    """Publish JSON events to a topic: the JSON argument, or one JSON value per line.

    Lines come from --file or stdin; blank lines are skipped. With --app, each event is
    validated against the topic's schema. Records are written in batches (--batch-size),
    and a batch is checked completely before it is written: a bad line stops the command with
    its line number, and nothing from its batch is written.
    """
    if payload is not None and file is not None:
        raise typer.BadParameter("give either a JSON argument or --file, not both")
    if key is not None and key_field is not None:
        raise typer.BadParameter("give either --key or --key-field, not both")
    if payload is None and file is None and sys.stdin.isatty():
        fail("nothing to produce: give a JSON argument, --file PATH, or pipe JSON lines")
    target = Target.resolve(broker, app)
    declared = target.declared(topic)
    stream = file.open("rb") if file is not None else None
    progress = _FileProgress(file) if file is not None else None

    async def go() -> int:
        async with target.open() as b:
            info = await _describe_or_create(b, topic, declared)
            builder = _Builder(info, declared, key, key_field)
            if payload is not None:
                lines: Iterable[tuple[int, str]] = [(1, payload)]
            else:
                lines = _lines(stream or sys.stdin, progress)
            written = 0
            try:
                for batch in _batches(lines, batch_size):
                    records = _build_batch(builder, batch)
                    await b.append(topic, records)
                    written += len(records)
            except _Failed as exc:
                _stop(exc, payload is not None, written)
            return written

    try:
        with progress or nullcontext():
            written = run(go)
    finally:
        if stream is not None:
            stream.close()
    stderr().print(f"produced {written} record(s) to {topic!r}")


async def _describe_or_create(b: Broker, topic: str, declared: Topic[Any] | None) -> TopicInfo:
    try:
        return await b.describe_topic(topic)
    except UnknownTopic:
        if declared is None:
            raise UnknownTopic(
                f"topic {topic!r} does not exist on {b.url}; create it with "
                f"`riverbed topics create {topic}` or start the app that declares it"
            ) from None
        # The app declares it: create it as the app itself would at start-up.
        return await b.create_topic(declared.spec)


def _stop(exc: _Failed, single: bool, written: int) -> NoReturn:
    if single:
        fail(f"{exc}; nothing was written")
    earlier = f" ({written} record(s) from earlier lines were written)" if written else ""
    fail(f"line {exc.line}: {exc}; nothing from its batch was written{earlier}")
