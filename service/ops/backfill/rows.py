"""The rows of a gzip-compressed data file, read in bounded memory whatever the file holds.

    compressed chunks ─▶ inflate, at most INFLATE_BYTES at a time (gzip members may be concatenated)
      ─▶ split at "\\n" ─▶ a row of at most ROW_BYTES_MAX bytes, or `TooLong` (its bytes dropped as they come)

A gzip stream inflates up to about 1,000 times its size: 150 KiB can hold one row of 150 MiB. Neither the
inflated data nor a row is ever held beyond its bound, so memory stays flat for any file; a row over the bound is
reported (`TooLong`, with its size) and the next row is read as usual.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

ROW_BYTES_MAX = 64 * 1024  # a report's row holds a key of at most 3,072 characters URL-encoded, and a few fields
INFLATE_BYTES = 1 << 20
GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass(frozen=True, slots=True)
class TooLong:
    """A row over ROW_BYTES_MAX, skipped: none of its bytes were kept."""

    size: int  # its length in bytes, without the "\n"


async def inflated(chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes]:
    """The inflated bytes of one or more concatenated gzip members, never more than INFLATE_BYTES at a time.
    Raises `zlib.error` for data that is not gzip, or a stream that ends inside a member."""
    inflate, inside = zlib.decompressobj(GZIP_WBITS), False
    async for chunk in chunks:
        pending = chunk
        while True:
            inside = inside or bool(pending)
            data = inflate.decompress(pending, INFLATE_BYTES)
            if data:
                yield data
            if inflate.eof:  # the next member, if any, starts in what is left
                pending, inflate, inside = inflate.unused_data, zlib.decompressobj(GZIP_WBITS), False
            else:
                pending = inflate.unconsumed_tail
            if not pending and len(data) < INFLATE_BYTES:  # a full `data` may leave output inside zlib
                break
    if inside:
        raise zlib.error("the gzip stream ends inside a member: the file is cut short")


async def rows(data: AsyncIterator[bytes], limit: int = ROW_BYTES_MAX) -> AsyncGenerator[bytes | TooLong]:
    """Each "\\n"-terminated row of `data` (the last one may lack its "\\n"), or `TooLong` for a row over `limit`."""
    row = _Row(limit)
    async for block in data:
        start = 0
        while (end := block.find(b"\n", start)) >= 0:
            row.add(block, start, end)
            yield row.take()
            start = end + 1
        row.add(block, start, len(block))
    if row.size:
        yield row.take()


class _Row:
    """The row being read: its bytes while it is within the limit, only its size after."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept = bytearray()
        self.size = 0

    def add(self, block: bytes, start: int, end: int) -> None:
        self.size += end - start
        if self.size <= self._limit:
            self._kept += block[start:end]
        else:
            self._kept.clear()

    def take(self) -> bytes | TooLong:
        taken = bytes(self._kept) if self.size <= self._limit else TooLong(self.size)
        self._kept.clear()
        self.size = 0
        return taken
