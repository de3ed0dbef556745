"""Calling the JetStream API (`$JS.API.*`) and translating nats-py's errors into riverbed's.

The few API calls riverbed makes are plain NATS requests with JSON bodies, decoded with
msgspec; going below nats-py's JetStream manager keeps the hot paths (consumer creation
for fetches, message gets for offsets) free of its per-call dataclass conversions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client

from riverbed.errors import BrokerError, BrokerUnavailable, ClosedError, UnknownTopic

__all__ = ["ApiError", "JsApi", "translated"]

STREAM_NOT_FOUND = 10059
CONSUMER_NOT_FOUND = 10014
NO_MESSAGE_FOUND = 10037
WRONG_LAST_SEQUENCE = 10071

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class ApiError(BrokerError):
    """JetStream refused an API call; `err_code` is its error code (e.g. 10059)."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        self.code = code
        self.err_code = err_code
        super().__init__(f"JetStream: {description} (code {code}, err_code {err_code})")


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn nats-py's connection and timeout errors into `BrokerUnavailable`/`ClosedError`."""
    try:
        yield
    except nats.errors.ConnectionClosedError as exc:
        raise ClosedError(f"the NATS connection is closed ({what})") from exc
    except (
        nats.errors.TimeoutError,
        nats.errors.NoServersError,
        nats.errors.ConnectionReconnectingError,
        nats.errors.OutboundBufferLimitError,
        nats.errors.StaleConnectionError,
        nats.errors.NoRespondersError,
        TimeoutError,
        OSError,
    ) as exc:
        raise BrokerUnavailable(f"NATS did not answer ({what}): {exc!r}; retry later") from exc


class JsApi:
    """JSON requests to the JetStream API on one connection."""

    def __init__(self, nc: Client, timeout: float) -> None:
        self.nc = nc
        self.timeout = timeout

    async def call(self, api: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Request `$JS.API.<api>`; raise `ApiError` (or `UnknownTopic`) for an error reply."""
        payload = b"" if body is None else _encode(body)
        with translated(api):
            msg = await self.nc.request(f"$JS.API.{api}", payload, timeout=self.timeout)
        reply = _decode(msg.data)
        err = reply.get("error")
        if err is not None:
            error = ApiError(err.get("code", 0), err.get("err_code", 0), err.get("description", ""))
            if error.err_code == STREAM_NOT_FOUND:
                raise UnknownTopic(str(error)) from error
            if error.code == 503:
                raise BrokerUnavailable(str(error)) from error
            raise error
        return reply

    async def msg_get(self, stream: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """`STREAM.MSG.GET` (leader-read, so it sees every acknowledged append); None if none."""
        try:
            reply = await self.call(f"STREAM.MSG.GET.{stream}", body)
        except ApiError as exc:
            if exc.err_code == NO_MESSAGE_FOUND or exc.code == 404:
                return None
            raise
        msg: dict[str, Any] = reply["message"]
        return msg
