"""The context a handler may take as its second argument.

`ctx.publish(...)` from a handler is tied to the record being handled. On a broker with
transactions (the sqlite log), the published records are held back and written in the
same transaction that commits the input offset: either both happen or neither, so a
crash never leaves an output without its input consumed or the other way round. On other
brokers they are appended at once (at-least-once: a crash may repeat them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from riverbed.events import Record
from riverbed.topics import Position

if TYPE_CHECKING:
    from riverbed.app import App
    from riverbed.topics import Topic

__all__ = ["Context"]


class Context:
    """Per-record handle: the record, its group, and publishing tied to it."""

    __slots__ = ("_app", "_transactional", "group", "outputs", "record")

    def __init__(self, app: App, group: str, record: Record[Any], *, transactional: bool) -> None:
        self._app = app
        self._transactional = transactional
        self.group = group
        self.record = record
        self.outputs: list[tuple[str, Record[Any]]] = []

    async def publish(
        self,
        topic: Topic[Any] | str,
        event: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Position | None:
        """Publish downstream as part of handling this record.

        Returns the position when the record was appended at once, or None when it is
        held for the transaction that also commits the input (it is then written when
        the consumer commits, within milliseconds).
        """
        t = self._app.get_topic(topic) if isinstance(topic, str) else topic
        record = self._app.producer.build(t, event, key=key, headers=headers)
        if self._transactional:
            self.outputs.append((t.name, record))
            return None
        return await self._app.producer.send(t, record)

    def publish_sync(
        self,
        topic: Topic[Any] | str,
        event: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Position | None:
        """`publish` for sync handlers, which run in a worker thread."""
        t = self._app.get_topic(topic) if isinstance(topic, str) else topic
        record = self._app.producer.build(t, event, key=key, headers=headers)
        if self._transactional:
            # The loop awaits this handler's thread, so nothing else touches the list.
            self.outputs.append((t.name, record))
            return None
        return self._app.portal.call(lambda: self._app.producer.send(t, record))

    def discard(self) -> None:
        """Forget held outputs (the attempt that made them failed)."""
        self.outputs.clear()
