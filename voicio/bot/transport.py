"""PTB's HTTP transport on aiohttp.

PTB's default transport (httpx) spends most of each call walking its
connection pool: with many connections open, every request re-checks every
idle socket. Measured against the local Bot API fake, that made a
sendMessage cost 2.7-3.6 ms of CPU, more than the rest of a voice note's
work. aiohttp keeps its idle connections in a queue per host. PTB supports
swapping the transport through `BaseRequest`; everything above it (the Bot,
error mapping, retries, rate limiting) is unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

_DEFAULT = BaseRequest.DEFAULT_NONE


class AiohttpRequest(BaseRequest):
    """A PTB request backend built on one aiohttp session."""

    def __init__(
        self,
        *,
        connections: int = 64,
        read_timeout: float = 5.0,
        write_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        pool_timeout: float = 1.0,
        media_write_timeout: float = 20.0,
    ) -> None:
        self._connections = connections
        self._read = read_timeout
        self._write = write_timeout
        self._connect = connect_timeout
        self._pool = pool_timeout
        self._media_write = media_write_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float:
        return self._read

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections)
            self._session = aiohttp.ClientSession(connector=connector)

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: float | object | None = _DEFAULT,
        write_timeout: float | object | None = _DEFAULT,
        connect_timeout: float | object | None = _DEFAULT,
        pool_timeout: float | object | None = _DEFAULT,
    ) -> tuple[int, bytes]:
        if self._session is None:
            await self.initialize()
        assert self._session is not None
        files = request_data.multipart_data if request_data else None
        fields = request_data.json_parameters if request_data else None
        write_default = self._media_write if files else self._write
        read = _seconds(read_timeout, self._read)
        write = _seconds(write_timeout, write_default)
        connect = _seconds(connect_timeout, self._connect)
        pool = _seconds(pool_timeout, self._pool)
        # aiohttp has no separate write timeout: a whole request may take the
        # write and read budgets together, and waiting for a pooled connection
        # counts towards the connect budget, as in PTB's default transport.
        timeout = aiohttp.ClientTimeout(
            total=None if read is None or write is None else read + write,
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=read,
        )
        body = _multipart(fields, files) if files else fields
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers={"User-Agent": self.USER_AGENT},
                timeout=timeout,
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc


def _seconds(value: float | object | None, default: float | None) -> float | None:
    if value is _DEFAULT:
        return default
    assert value is None or isinstance(value, int | float)
    return value


def _multipart(
    fields: dict[str, str] | None,
    files: Mapping[str, tuple[str, bytes | IO[bytes], str]],
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in (fields or {}).items():
        form.add_field(name, value)
    for name, (file_name, content, mime_type) in files.items():
        form.add_field(name, content, filename=file_name, content_type=mime_type)
    return form
