"""The public face of `riverbed`: exactly these names, and nothing happens at import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from typing import Any

import riverbed

EXPORTED = [
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

OPTIONAL_CLIENTS = [
    "aiokafka",
    "aiomcache",
    "confluent_kafka",
    "nats",
    "pydantic",
    "pymemcache",
    "redis",
    "rich",
    "starlette",
    "typer",
    "uvicorn",
]


def test_all_is_pinned_and_sorted() -> None:
    # A change here is a change of the public API: make it on purpose.
    assert riverbed.__all__ == EXPORTED
    assert riverbed.__all__ == sorted(riverbed.__all__)
    assert len(set(riverbed.__all__)) == len(riverbed.__all__)


def test_every_exported_name_exists() -> None:
    for name in riverbed.__all__:
        assert getattr(riverbed, name, None) is not None, name


def test_every_public_object_of_the_package_is_exported() -> None:
    # As httpx's test_exported_members: nothing public sneaks in without __all__.
    # Submodules appear as attributes once imported; they are not part of the face.
    public = {
        name
        for name, value in vars(riverbed).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(riverbed.__all__)


def test_exported_errors_form_one_tree() -> None:
    errors = [getattr(riverbed, n) for n in EXPORTED if n.endswith(("Error", "Name", "Large"))]
    for cls in errors:
        assert issubclass(cls, riverbed.RiverbedError), cls
    user_mistakes = [riverbed.ConfigError, riverbed.InvalidTopicName, riverbed.BrokerURLError]
    assert all(issubclass(c, ValueError) for c in user_mistakes)
    assert issubclass(riverbed.RecordTooLarge, ValueError)
    assert issubclass(riverbed.SchemaError, TypeError)
    assert issubclass(riverbed.MissingExtra, ImportError)
    for signal in (riverbed.Retry, riverbed.Skip, riverbed.DeadLetter):
        assert issubclass(signal, riverbed.HandlerSignal)


def test_every_exported_object_has_a_docstring() -> None:
    for name in riverbed.__all__:
        assert (getattr(riverbed, name).__doc__ or "").strip(), f"{name} has no docstring"


_IMPORT_PROBE = textwrap.dedent(
    """
    import json, logging, os, sys, threading

    reads = []

    class Spy(dict):
        # Stands in for os.environ in this throwaway process to see what is read.
        def __getitem__(self, key):
            reads.append(key)
            return super().__getitem__(key)

        def get(self, key, default=None):
            reads.append(key)
            return super().get(key, default)

        def __contains__(self, key):
            reads.append(key)
            return super().__contains__(key)

    os.environ = Spy(os.environ)
    threads_before = threading.active_count()

    import riverbed

    print(json.dumps({
        "modules": sorted(sys.modules),
        "env_reads": reads,
        "root_handlers": [repr(h) for h in logging.getLogger().handlers],
        "root_level": logging.getLogger().level,
        "riverbed_handlers": [
            type(h).__name__ for h in logging.getLogger("riverbed").handlers
        ],
        "threads_started": threading.active_count() - threads_before,
        "version": riverbed.__version__,
    }))
    """
)


def _import_in_a_fresh_process() -> dict[str, Any]:
    env = dict(os.environ)
    env["RIVERBED_BROKER"] = "poisoned://this-must-not-be-read-at-import"
    env["RIVERBED_LOG_LEVEL"] = "poison"
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"`import riverbed` failed:\n{out.stderr}"
    assert out.stderr == "", out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_import_has_no_side_effects() -> None:
    probe = _import_in_a_fresh_process()

    loaded = sorted({m.split(".")[0] for m in probe["modules"]} & set(OPTIONAL_CLIENTS))
    assert loaded == [], f"`import riverbed` imported optional clients: {loaded}"

    ours = [k for k in probe["env_reads"] if k.upper().startswith("RIVERBED")]
    assert ours == [], f"`import riverbed` read environment variables {ours}"

    assert probe["root_handlers"] == [], "import configured root logging handlers"
    assert probe["root_level"] == 30  # logging.WARNING, untouched
    assert set(probe["riverbed_handlers"]) <= {"NullHandler"}
    assert probe["threads_started"] == 0
    assert probe["version"] == riverbed.__version__
