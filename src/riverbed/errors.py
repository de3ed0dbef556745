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
    """Run the handler again for this record after `after` seconds (None: policy backoff)."""

    def __init__(self, after: float | None = None, reason: str = "") -> None:
        self.after = after
        self.reason = reason
        super().__init__(reason or f"retry requested (after={after})")


class Skip(HandlerSignal):
    """Acknowledge the record without handling it further."""


class DeadLetter(HandlerSignal):
    """Send the record to the dead-letter topic now, with `reason`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
