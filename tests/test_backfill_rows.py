"""The rows of an inventory data file, read in bounded memory: a gzip stream inflates up to ~1,000 times its size,
so neither the inflated data nor a row may be held beyond its bound, whatever the file holds."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import pytest

from service.ops.backfill.rows import INFLATE_BYTES, TooLong, inflated, rows


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_rows(data: bytes, chunk: int, limit: int) -> list[bytes | TooLong]:
    return [row async for row in rows(inflated(chunked(data, chunk)), limit)]


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
async def test_a_row_over_the_limit_is_reported_by_its_size_and_the_next_rows_read(chunk: int) -> None:
    """However the compressed bytes arrive, a row over the limit is `TooLong` with its size, and the rows
    around it (in several gzip members, the last without its newline) come back whole."""
    data = gzip.compress(b"first\n" + b"a" * 5000 + b"\nsecond\n") + gzip.compress(b"exactly10!\nlast")

    read = await read_rows(data, chunk, limit=10)

    assert read == [b"first", TooLong(5000), b"second", b"exactly10!", b"last"]


async def test_inflating_never_yields_more_than_its_bound_at_once() -> None:
    """A bomb: 64 MiB of zeros in about 64 KiB of gzip, handed over in one chunk, comes out in pieces of at most
    INFLATE_BYTES (reading it whole would hold all 64 MiB)."""
    data = gzip.compress(bytes(64 << 20))

    sizes = [len(piece) async for piece in inflated(chunked(data, len(data)))]

    assert sum(sizes) == 64 << 20
    assert max(sizes) <= INFLATE_BYTES


@pytest.mark.parametrize("data", [b"not gzip at all", gzip.compress(b"row\n" * 1000)[:-12]])
async def test_a_file_that_is_not_whole_gzip_raises_zlib_error(data: bytes) -> None:
    """Not gzip, or cut short inside a member: an error, never a silent end of the rows."""
    with pytest.raises(zlib.error):
        await read_rows(data, 64, limit=100)
