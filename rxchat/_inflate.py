"""Response bodies decoded from their ``Content-Encoding`` by rxchat itself, in bounded pieces.

aiohttp's own decompression inflates whatever one socket read brought in one go: a small gzip
"bomb" (300 KB on the wire, 300 MB inflated) could then put hundreds of megabytes in memory before
any of rxchat's limits (``max_response_bytes``, ``max_event_bytes``) looked at it. The transport
therefore asks aiohttp for the raw body (``auto_decompress=False``) and reads it through
:func:`body_reader`: an uncompressed body is aiohttp's ``StreamReader`` itself (no cost at all),
a gzip or deflate body an :class:`Inflater` whose :meth:`~Inflater.readany` never hands out more
than :data:`PIECE` bytes at a time, however much one compressed read would inflate to.

rxchat asks for ``Accept-Encoding: gzip, deflate`` (what it can decode); an answer in another
encoding (``br``, ``zstd`` — a server that ignored the header, or a caller's own header) is a
typed :class:`~rxchat.APIResponseValidationError` naming it, never undecoded bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Protocol

import aiohttp

from .errors import APIResponseValidationError

__all__ = ["ACCEPT_ENCODING", "PIECE", "BodyReader", "Inflater", "body_reader"]

ACCEPT_ENCODING = "gzip, deflate"
"""The ``Accept-Encoding`` rxchat sends: the encodings :func:`body_reader` decodes."""

PIECE = 1 << 16
"""Inflated bytes handed out per read at most (the decoder's feed size)."""

_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip member (header and CRC checked)
_ZLIB_WBITS = zlib.MAX_WBITS  # HTTP "deflate" as the RFC says: zlib-wrapped
_RAW_WBITS = -zlib.MAX_WBITS  # ... and as some servers send it: raw deflate


class BodyReader(Protocol):
    """What the transport reads a body with: ``readany()`` returns ``b""`` at its end."""

    async def readany(self) -> bytes: ...


def content_codings(resp: aiohttp.ClientResponse) -> list[str]:
    """The response's content codings in the order they were applied, ``identity`` left out."""
    value = resp.headers.get("Content-Encoding", "")
    return [c for c in (p.strip().lower() for p in value.split(",")) if c and c != "identity"]


def body_reader(resp: aiohttp.ClientResponse) -> BodyReader:
    """Read ``resp``'s body decoded: the raw ``StreamReader`` or an :class:`Inflater` over it.

    Raises:
        APIResponseValidationError: the body is in an encoding rxchat does not decode.
    """
    codings = content_codings(resp)
    if not codings:
        return resp.content
    for coding in codings:
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise APIResponseValidationError(
                f"the server answered with Content-Encoding: {resp.headers['Content-Encoding']}, "
                f"which rxchat does not decode (it asks for {ACCEPT_ENCODING})",
                body=None,
            )
    if len(codings) > 1:
        raise APIResponseValidationError(
            f"the server answered with Content-Encoding: {resp.headers['Content-Encoding']}; "
            "rxchat decodes one content coding, not several applied in turn",
            body=None,
        )
    return Inflater(resp.content, codings[0])


class Inflater:
    """A gzip or deflate body, inflated :data:`PIECE` bytes at most per :meth:`readany`.

    Memory stays bounded by the compressed read aiohttp buffered plus one piece: input that
    would inflate further waits in zlib's ``unconsumed_tail`` until the next read asks for it.
    Several gzip members one after the other are one body (RFC 1952). Corrupt or truncated
    compressed data is an :class:`aiohttp.ClientPayloadError` (aiohttp's own class for it, which
    the transport maps to :class:`~rxchat.APIConnectionError` like any broken body); the text
    inflated before the damage was handed out first.
    """

    __slots__ = ("_coding", "_content", "_ended", "_more", "_started", "_tail", "_z")

    def __init__(self, content: aiohttp.StreamReader, coding: str) -> None:
        self._content = content
        self._coding = "gzip" if coding == "x-gzip" else coding
        self._z = self._new()
        self._tail = b""  # compressed input not yet given to zlib (zlib's unconsumed_tail)
        self._more = False  # the last piece was full: zlib may hold more output
        self._started = False  # deflate: whether the zlib/raw question is settled
        self._ended = False

    def _new(self, wbits: int | None = None) -> zlib._Decompress:
        if wbits is None:
            wbits = _GZIP_WBITS if self._coding == "gzip" else _ZLIB_WBITS
        return zlib.decompressobj(wbits)

    async def readany(self) -> bytes:
        """The next inflated bytes (at most :data:`PIECE`); ``b""`` at the end of the body."""
        while True:
            if self._tail or self._more:
                data, self._tail = self._tail, b""
            elif self._ended:
                return b""
            else:
                data = await self._content.readany()
                if not data:
                    self._ended = True
                    self._finish()
                    return b""
            out = self._inflate(data)
            if out:
                return out

    def drain(self, data: bytes) -> Iterator[bytes]:
        """Inflate ``data`` (raw bytes taken out of a broken connection's buffer) piece by piece."""
        self._tail += data
        while self._tail or self._more:
            data, self._tail = self._tail, b""
            out = self._inflate(data)
            if out:
                yield out

    def _inflate(self, data: bytes) -> bytes:
        z = self._z
        try:
            out = z.decompress(data, PIECE)
        except zlib.error as err:
            if self._coding == "deflate" and not self._started:
                # Not zlib-wrapped: raw deflate, as some servers send "deflate".
                self._z = self._new(_RAW_WBITS)
                self._started = True
                return self._inflate(data)
            raise self._corrupt(err) from err
        self._started = self._started or bool(data)
        self._tail = z.unconsumed_tail
        self._more = len(out) == PIECE
        if z.eof and z.unused_data:
            rest = z.unused_data
            if self._coding != "gzip":
                raise self._corrupt(f"{len(rest)} bytes follow the end of the deflate data")
            self._z = self._new()  # the next gzip member
            self._tail = rest + self._tail
        return out

    def _finish(self) -> None:
        """At the end of the raw body: the compressed data must have ended too."""
        if self._started and not self._z.eof:
            raise self._corrupt("the compressed data ends before its end marker")

    def _corrupt(self, why: object) -> aiohttp.ClientPayloadError:
        return aiohttp.ClientPayloadError(f"the body's {self._coding} data is corrupt: {why}")
