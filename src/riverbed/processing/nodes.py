"""The steps of a flow: a tree of nodes that items are pushed through.

An item is (key, value, ts): the record's key as text (or None), the value so far and
its event time in ms. Each node does its step and pushes the result to its children.
Two ways through the same tree: `push` when every user function of the flow is a plain
function (no coroutine frame per step: the fast path), `apush` when one of them is a
coroutine function. `Run` (in `task.py`) is what a node sees of the record being
processed: where outputs go and the state of the partition.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from riverbed.errors import ConfigError

if TYPE_CHECKING:
    from riverbed.processing.task import Run
    from riverbed.topics import Topic

__all__ = [
    "Branch",
    "Filter",
    "FlatMap",
    "FnNode",
    "Map",
    "Node",
    "Peek",
    "Rekey",
    "Route",
    "Sink",
    "UserFn",
]

Fn = Callable[..., Any]


def is_async_fn(fn: Fn) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    return inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


def key_text(key: object) -> str | None:
    """A key as the flow carries it: text (ints and bytes converted), or None."""
    if key is None or isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "surrogateescape")
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise ConfigError(f"a flow key must be str, bytes or int, got {type(key).__name__}")


class Node(ABC):
    """A step; pushes what it makes to every child."""

    is_async = False

    def __init__(self) -> None:
        self.children: list[Node] = []

    def add(self, child: Node) -> Node:
        self.children.append(child)
        return child

    @abstractmethod
    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        """Do the step for one item and pass what it makes on."""

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        self.push(run, key, value, ts)  # nodes without user coroutines

    def forward(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        for child in self.children:
            child.push(run, key, value, ts)

    async def aforward(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        for child in self.children:
            await child.apush(run, key, value, ts)

    def walk(self) -> Iterable[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


class UserFn:
    """A user's function in a flow (a step, a predicate, a join's combiner), sync or
    async: `call` for the sync path, `acall` for the async one."""

    __slots__ = ("fn", "is_async")

    def __init__(self, fn: Fn) -> None:
        if not callable(fn):
            raise ConfigError(f"a flow step takes a function, got {fn!r}")
        self.fn = fn
        self.is_async = is_async_fn(fn)

    def call(self, *args: Any) -> Any:
        result = self.fn(*args)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise TypeError(
                f"flow step {getattr(self.fn, '__qualname__', self.fn)!r} returned an "
                "awaitable from a plain function; declare it `async def`"
            )
        return result

    async def acall(self, *args: Any) -> Any:
        result = self.fn(*args)
        return await result if inspect.isawaitable(result) else result


class FnNode(Node):
    """A node around one user function."""

    def __init__(self, fn: Fn) -> None:
        super().__init__()
        step = UserFn(fn)
        self.fn = fn
        self.is_async = step.is_async
        # The bound methods themselves: no extra frame per item on the hot path.
        self.call = step.call
        self.acall = step.acall


class Map(FnNode):
    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        self.forward(run, key, self.call(value), ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        await self.aforward(run, key, await self.acall(value), ts)


class Filter(FnNode):
    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        if self.call(value):
            self.forward(run, key, value, ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        if await self.acall(value):
            await self.aforward(run, key, value, ts)


class FlatMap(FnNode):
    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        for item in self.call(value):
            self.forward(run, key, item, ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        for item in await self.acall(value):
            await self.aforward(run, key, item, ts)


class Peek(FnNode):
    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        self.call(value)
        self.forward(run, key, value, ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        await self.acall(value)
        await self.aforward(run, key, value, ts)


class Rekey(FnNode):
    """`key_by`/`group_by`: the value's new key (as text) from a function of it."""

    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        self.forward(run, key_text(self.call(value)), value, ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        await self.aforward(run, key_text(await self.acall(value)), value, ts)


class Branch(Node):
    """Each item goes to the first arm whose predicate holds, else to the last arm."""

    def __init__(self, predicates: list[Fn]) -> None:
        super().__init__()
        self.tests = [UserFn(p) for p in predicates]
        self.is_async = any(t.is_async for t in self.tests)

    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        for i, test in enumerate(self.tests):
            if test.call(value):
                self.children[i].push(run, key, value, ts)
                return
        self.children[-1].push(run, key, value, ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        for i, test in enumerate(self.tests):
            if await test.acall(value):
                await self.children[i].apush(run, key, value, ts)
                return
        await self.children[-1].apush(run, key, value, ts)


class Arm(Node):
    """One arm of a `Branch`: passes items on."""

    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        self.forward(run, key, value, ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        await self.aforward(run, key, value, ts)


class Sink(Node):
    """`to(topic)`: the item becomes an output record of the commit."""

    def __init__(self, topic: Topic[Any]) -> None:
        super().__init__()
        self.topic = topic

    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        run.emit(self.topic, key, value, ts)


class Route(Node):
    """`route({topic: predicate}, default=...)`: to the first topic whose test holds."""

    def __init__(self, routes: list[tuple[Topic[Any], Fn]], default: Topic[Any] | None) -> None:
        super().__init__()
        self.routes = [(t, UserFn(p)) for t, p in routes]
        self.default = default
        self.is_async = any(test.is_async for _, test in self.routes)

    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        for topic, test in self.routes:
            if test.call(value):
                run.emit(topic, key, value, ts)
                return
        if self.default is not None:
            run.emit(self.default, key, value, ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        for topic, test in self.routes:
            if await test.acall(value):
                run.emit(topic, key, value, ts)
                return
        if self.default is not None:
            run.emit(self.default, key, value, ts)
