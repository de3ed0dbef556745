"""`riverbed run`: serve an app in this process, or supervise worker processes."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from riverbed.cli._common import BrokerOpt, stderr

__all__ = ["run_command"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _configure_logging(level: str) -> None:
    """Rich log lines on stderr; done here, when the command runs, never at import."""
    from rich.logging import RichHandler

    handler = RichHandler(console=stderr(), rich_tracebacks=True, show_path=False)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", handlers=[handler])


def run_command(
    target: Annotated[
        str, typer.Argument(help="The app to run, as module:attribute.", metavar="MODULE:APP")
    ],
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Worker processes; they share the partitions as one group.",
        ),
    ] = 1,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    broker: BrokerOpt = None,
) -> None:
    """Run an app's consumers until Ctrl-C or SIGTERM, then drain and exit.

    With --workers N, N worker processes each run the app and split the partitions
    through the consumer-group protocol; a worker that dies is restarted. --broker
    (or RIVERBED_BROKER) overrides the app's broker URL.
    """
    from riverbed.brokers import broker_from_url
    from riverbed.runtime import load_app, run_app, supervise

    level = log_level.upper()
    if level not in LEVELS:
        raise typer.BadParameter(f"--log-level must be one of {', '.join(LEVELS)}")
    app = load_app(target)  # fail fast here, before any worker starts
    if broker:
        # The app and the worker processes read it when they connect.
        os.environ["RIVERBED_BROKER"] = broker
    _configure_logging(level)
    if workers == 1:
        run_app(app)
        return
    # A bad URL would make every worker die at start and be restarted forever: check
    # it here. Building a backend parses its URL; nothing is opened until start().
    broker_from_url(app.broker_url())
    grace = app.consumer_options.shutdown_timeout + 20
    code = supervise(target, workers, extra_args=["--log-level", level], stop_grace=grace)
    if code:
        raise typer.Exit(code)
