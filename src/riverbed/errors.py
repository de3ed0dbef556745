"""One exception tree for everything riverbed raises.

RiverbedError
├── ConfigError (ValueError)           a setting is wrong: says which and how to fix it
│   ├── InvalidTopicName
│   ├── BrokerURLError
│   └── MissingExtra (ImportError too)  an optional client is not installed
├── UnsupportedCapability               the backend cannot give what the app asked for
├── UnknownTopic (LookupError)
├── TopicConflict                       the topic exists with other settings
├── SchemaError (TypeError)             an event does not fit its topic's schema
│   ├── EncodeError                     ... on the way in (publish)
│   └── DecodeError                     ... on the way out (fetch); names topic and offset
├── RecordTooLarge (ValueError)
├── ClosedError                         you closed it (app, broker, producer)
├── BrokerError                         the backend broke it; `retriable` says if a retry helps
│   ├── BrokerUnavailable (retriable)
│   └── FencedError                     a newer owner holds the partition: stop, don't commit
└── HandlerSignal                       raised by handlers to steer delivery (not failures)
    ├── Retry(after=...)
    ├── Skip
    └── DeadLetter(reason)
"""

from __future__ import annotations


class RiverbedError(Exception):
    """Base class of every error riverbed raises."""

    retriable: bool = False


class ConfigError(RiverbedError, ValueError):
    """A setting is wrong; the message names it and says how to fix it."""


class InvalidTopicName(ConfigError):
    """A topic name breaks the rule `[A-Za-z0-9._-]{1,249}`."""


class BrokerURLError(ConfigError):
    """A broker URL has an unknown scheme or a malformed part."""


class MissingExtra(ConfigError, ImportError):
    """An optional client library is not installed; the message names the extra."""


class UnsupportedCapability(RiverbedError):
    """The backend cannot provide a property the app asked for (e.g. compaction)."""


class UnknownTopic(RiverbedError, LookupError):
    """The topic does not exist on the broker."""


class TopicConflict(RiverbedError):
    """The topic exists with settings different from those declared."""


class SchemaError(RiverbedError, TypeError):
    """An event does not fit its topic's schema."""


class EncodeError(SchemaError):
    """An event could not be encoded for its topic (wrong type, unencodable value)."""


class DecodeError(SchemaError):
    """A stored payload does not decode into its topic's schema.

    Carries where it was found so the message, the dead-letter headers and the CLI can
    point at the exact record.
    """

    def __init__(
        self,
        message: str,
        *,
        topic: str = "",
        partition: int = -1,
        offset: int = -1,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        where = f"topic {topic!r} partition {partition} offset {offset}: " if topic else ""
        super().__init__(where + message)


class RecordTooLarge(RiverbedError, ValueError):
    """An encoded record is larger than the configured `max_record_bytes`."""


class ClosedError(RiverbedError):
    """The object was closed by its owner; reopen or create a new one."""


class BrokerError(RiverbedError):
    """The backend failed; `retriable` tells whether trying again may succeed."""


class BrokerUnavailable(BrokerError):
    """The backend cannot be reached right now."""

    retriable = True


class FencedError(BrokerError):
    """This member no longer owns the partition; its commits are refused.

    Raised after a rebalance handed the partition to another member (or the member was
    declared dead). The consumer must drop the partition without committing.
    """


class HandlerSignal(RiverbedError):
    """Base of the exceptions a handler raises on purpose to steer delivery."""


class Retry(HandlerSignal):
    """When to try a failed record again.

    Two uses, one idea. As a consumer's policy, `retry=Retry(attempts=5, backoff=0.5)`
    says how often and how patiently failures are retried (exponential backoff with
    full jitter, capped at `max_backoff`). Raised from a handler, `raise Retry(after=2)`
    asks for another try of this record in 2 seconds; it counts as an attempt.
    """

    def __init__(
        self,
        after: float | None = None,
        reason: str = "",
        *,
        attempts: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 30.0,
        jitter: bool = True,
    ) -> None:
        if attempts < 1:
            raise ConfigError(f"Retry(attempts={attempts}): attempts must be at least 1")
        if backoff < 0 or max_backoff < 0 or (after is not None and after < 0):
            raise ConfigError("Retry: after, backoff and max_backoff must be >= 0 seconds")
        self.after = after
        self.reason = reason
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.jitter = jitter
        super().__init__(reason or f"retry requested (after={after})")

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait before attempt number `attempt + 1`; `rand` is in [0, 1)."""
        cap: float = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return cap * rand if self.jitter else cap

    def __repr__(self) -> str:
        return (
            f"Retry(after={self.after!r}, attempts={self.attempts}, backoff={self.backoff}, "
            f"max_backoff={self.max_backoff}, jitter={self.jitter})"
        )


class Skip(HandlerSignal):
    """Acknowledge the record without handling it further."""


class DeadLetter(HandlerSignal):
    """Send the record to the dead-letter topic now, with `reason`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
