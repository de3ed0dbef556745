"""riverbed: event-driven systems in Python.

Declare typed events, topics and consumers on an `App`; run them on the embedded
durable log (SQLite) with no setup, or on a distributed engine by URL. Importing this
package has no side effects: it reads no environment, starts nothing, and imports no
optional client.
"""

from riverbed.app import App
from riverbed.brokers.base import Broker, TopicPartition, TopicSpec
from riverbed.context import Context
from riverbed.errors import (
    BrokerError,
    BrokerUnavailable,
    BrokerURLError,
    ClosedError,
    ConfigError,
    DeadLetter,
    DecodeError,
    EncodeError,
    FencedError,
    HandlerSignal,
    InvalidTopicName,
    MissingExtra,
    RecordTooLarge,
    Retry,
    RiverbedError,
    SchemaError,
    Skip,
    TopicConflict,
    UnknownTopic,
    UnsupportedCapability,
)
from riverbed.events import Event, Record
from riverbed.member import ConsumerOptions
from riverbed.processing.table import Table, WindowValue
from riverbed.processing.windows import Hopping, Session, Sliding, Tumbling
from riverbed.topics import Position, Topic

__all__ = [
    "App",
    "Broker",
    "BrokerError",
    "BrokerURLError",
    "BrokerUnavailable",
    "ClosedError",
    "ConfigError",
    "ConsumerOptions",
    "Context",
    "DeadLetter",
    "DecodeError",
    "EncodeError",
    "Event",
    "FencedError",
    "HandlerSignal",
    "Hopping",
    "InvalidTopicName",
    "MissingExtra",
    "Position",
    "Record",
    "RecordTooLarge",
    "Retry",
    "RiverbedError",
    "SchemaError",
    "Session",
    "Skip",
    "Sliding",
    "Table",
    "Topic",
    "TopicConflict",
    "TopicPartition",
    "TopicSpec",
    "Tumbling",
    "UnknownTopic",
    "UnsupportedCapability",
    "WindowValue",
]
__version__ = "0.1.0"
