"""The Kafka backend's settings and the librdkafka configurations built from them."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import msgspec

from riverbed.errors import BrokerURLError, ConfigError

__all__ = ["KafkaConfig", "decode_client_id", "encode_client_id"]

_CLIENT_PREFIX = "riverbed;"


class KafkaConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of `KafkaBroker`; `extra` goes to every librdkafka client (TLS, SASL, ...)."""

    bootstrap: str
    session_timeout_ms: int = 10_000
    """Kafka's own session timeout for group members: how long the coordinator waits for
    the heartbeats of a crashed process. A member that stops calling `heartbeat` inside a
    live process is expired locally after its riverbed `session_timeout` instead."""
    fetch_wait_ms: int = 10
    """`fetch.wait.max.ms`: how long the server holds an empty fetch; bounds wake-up delay."""
    linger_ms: int = 2
    release_timeout: float = 60.0
    """Longest a revoked partition waits for `release` before Kafka is told it is free."""
    request_timeout: float = 10.0
    extra: dict[str, str] = msgspec.field(default_factory=dict)

    def common(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap,
            "log_level": 3,
            # A metadata request must never create the topic it asks about.
            "allow.auto.create.topics": False,
            **self.extra,
        }

    def producer(self) -> dict[str, Any]:
        return {
            **self.common(),
            "linger.ms": self.linger_ms,
            # Idempotence keeps per-partition order across librdkafka's internal retries.
            "enable.idempotence": True,
            "message.timeout.ms": int(self.request_timeout * 3000),
        }

    def transactional_producer(self) -> dict[str, Any]:
        return {**self.producer(), "transactional.id": f"riverbed-{uuid.uuid4()}"}

    def reader(self) -> dict[str, Any]:
        return {
            **self.common(),
            # A reader never joins a group; librdkafka still wants an id to exist.
            "group.id": "riverbed-reader",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            # Out-of-range positions come back as errors; fetch decides what they mean.
            "auto.offset.reset": "error",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": self.fetch_wait_ms,
            "fetch.error.backoff.ms": 10,
            "allow.auto.create.topics": False,
        }

    def member(self, group: str, member_id: str, client: str) -> dict[str, Any]:
        session = self.session_timeout_ms
        return {
            **self.common(),
            "group.id": group,
            "client.id": encode_client_id(member_id, client),
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": session,
            "heartbeat.interval.ms": max(50, session // 10),
            # The rebalance timeout: a revocation waits for `release` up to release_timeout.
            "max.poll.interval.ms": int(self.release_timeout * 1000) + session,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "allow.auto.create.topics": False,
            # Members only coordinate; records are read by the readers, so prefetch little.
            "queued.max.messages.kbytes": 64,
            "fetch.wait.max.ms": 500,
        }


def parse_url(url: str, options: dict[str, Any]) -> KafkaConfig:
    """`kafka://host:port[,host:port]` plus keyword options into a `KafkaConfig`."""
    parts = urlsplit(url)
    if parts.scheme != "kafka" or not parts.netloc:
        raise BrokerURLError(f"expected kafka://host:port[,host:port], got {url!r}")
    try:
        return msgspec.convert({"bootstrap": parts.netloc, **options}, KafkaConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"bad KafkaBroker option: {exc}") from exc


def _quote(text: str) -> str:
    # No "-" in the encoded form: Kafka appends "-<uuid>" to it to make member ids.
    return quote(text, safe="").replace("-", "%2D")


def encode_client_id(member_id: str, client: str) -> str:
    """A librdkafka client.id carrying the riverbed member id and client name.

    Kafka reports members by its own generated ids; the client.id (which the coordinator
    also uses as the prefix of those ids) is how `describe_group` finds ours again.
    """
    return f"{_CLIENT_PREFIX}{_quote(member_id)};{_quote(client)}"


def decode_client_id(client_id: str) -> tuple[str, str] | None:
    """(member id, client) from a client.id or Kafka member id, else None (foreign)."""
    if not client_id.startswith(_CLIENT_PREFIX):
        return None
    encoded = client_id[len(_CLIENT_PREFIX) :].partition("-")[0]
    member, sep, client = encoded.partition(";")
    if not sep:
        return None
    return unquote(member), unquote(client)
