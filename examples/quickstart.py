import asyncio

from riverbed import App, Event


class Greeting(Event):
    name: str


app = App("quickstart")  # a durable log in ./.riverbed/quickstart.db: nothing to install
greetings = app.topic("greetings", Greeting)
greeted = asyncio.Event()


@app.consumer(greetings, group="greeter")
async def greet(greeting: Greeting) -> None:
    print(f"hello, {greeting.name}!")
    greeted.set()


async def main() -> None:
    async with app:  # runs every consumer in the background until the block ends
        await greetings.publish(Greeting(name="world"))
        await asyncio.wait_for(greeted.wait(), timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
