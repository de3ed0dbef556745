"""The `riverbed` command line.

    riverbed run module:app [--workers N]
    riverbed topics list | create NAME | describe NAME
    riverbed produce TOPIC [JSON] [--file PATH]
    riverbed tail TOPIC [--offset N | --since 10m] [--follow]
    riverbed groups list | describe GROUP | reset GROUP --topic T --to-...
    riverbed dlq list TOPIC | replay TOPIC (--all | --id ID ...)

Building the command tree has no side effects; logging is configured by `run` only.
"""

from __future__ import annotations

import typer

from riverbed.cli._common import RiverbedGroup
from riverbed.cli.dlq import dlq
from riverbed.cli.groups import groups
from riverbed.cli.produce import produce_command
from riverbed.cli.run import run_command
from riverbed.cli.tail import tail_command
from riverbed.cli.topics import topics

__all__ = ["app", "main"]

app = typer.Typer(
    name="riverbed",
    cls=RiverbedGroup,
    help="riverbed: run event-driven apps and inspect their topics, groups and dead letters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("run")(run_command)
app.command("produce")(produce_command)
app.command("tail")(tail_command)
app.add_typer(topics, name="topics")
app.add_typer(groups, name="groups")
app.add_typer(dlq, name="dlq")


def main() -> None:
    """The console script `riverbed` and `python -m riverbed`."""
    app(prog_name="riverbed")
