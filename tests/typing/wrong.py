"""Must FAIL mypy: publishing the wrong event type to a typed topic."""

from riverbed import App, Event


class A(Event):
    x: int


class B(Event):
    y: int


app = App("typing", broker="memory://")
topic_a = app.topic("a", A)


async def wrong() -> None:
    await topic_a.publish(B(y=1))
