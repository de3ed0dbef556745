"""Log backends, looked up by URL scheme so an unused backend is never imported.

Third parties add a scheme through the `riverbed.brokers` entry-point group, whose
value is an import string `"package.module:Factory"`; the factory is called with the URL.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit

from riverbed.brokers.base import Broker
from riverbed.errors import BrokerURLError, MissingExtra

__all__ = ["BUILTIN_BACKENDS", "broker_from_url"]

BUILTIN_BACKENDS: dict[str, tuple[str, str]] = {
    # scheme: (import string, extra that provides its client; "" when none is needed)
    "memory": ("riverbed.brokers.memory:MemoryBroker", ""),
    "sqlite": ("riverbed.brokers.sqlite:SqliteBroker", ""),
    "kafka": ("riverbed.brokers.kafka:KafkaBroker", "kafka"),
    "nats": ("riverbed.brokers.nats:NatsBroker", "nats"),
    "redis": ("riverbed.brokers.redis:RedisBroker", "redis"),
}


def _load(import_string: str, scheme: str, extra: str) -> Any:
    module_name, _, attr = import_string.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra:
            raise MissingExtra(
                f"the {scheme}:// backend needs an optional client: "
                f"pip install 'riverbed[{extra}]' ({exc})"
            ) from exc
        raise
    return getattr(module, attr)


def broker_from_url(url: str, **options: Any) -> Broker:
    """Build the backend a URL names, e.g. `sqlite:///data/app.db` or `memory://`."""
    scheme = urlsplit(url).scheme
    if not scheme:
        raise BrokerURLError(
            f"broker URL {url!r} has no scheme; use e.g. 'sqlite:///path/app.db' or 'memory://'"
        )
    if scheme in BUILTIN_BACKENDS:
        import_string, extra = BUILTIN_BACKENDS[scheme]
        factory = _load(import_string, scheme, extra)
    else:
        found = [ep for ep in entry_points(group="riverbed.brokers") if ep.name == scheme]
        if not found:
            known = ", ".join(sorted(BUILTIN_BACKENDS))
            raise BrokerURLError(
                f"unknown broker scheme {scheme!r} in {url!r}; known schemes: {known} "
                "(others register through the 'riverbed.brokers' entry point)"
            )
        factory = found[0].load()
    broker: Broker = factory(url, **options)
    return broker
