"""HPACK header blocks for the HTTP/2 server, over the ``hpack`` library, with caches for the
blocks that repeat.

How it works
------------
Encoding. squall's encoder keeps its dynamic table at size 0: the first block it sends on a
connection starts with a dynamic table size update to 0 (``TABLE_SIZE_ZERO``), after which both
ends' tables stay empty. A field then always encodes to the same bytes (a static table index, or a
literal), so ``encode`` joins bytes cached per field, shared by every connection. The price is that
repeated response fields (``server``, ``date``) go out as literals instead of one-byte indexes.

Decoding. ``BlockDecoder`` runs ``hpack``'s decoder and says whether the block changed the dynamic
table (an entry added, evicted, or the size updated). A block that did not — every field is an
index or a literal without indexing, which is what a client sends once its table is primed —
decodes to the same fields for as long as the table stays as it is. The caller may cache what it
derives from such a block, keyed by the block's bytes, and must drop that cache whenever
``generation`` moves (a decoded block changed the table).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any, Final

Field = tuple[bytes, bytes]


class HeaderListTooLarge(Exception):
    """A header block decoded past the header list size limit."""


class BadHeaderBlock(Exception):
    """A header block HPACK cannot decode (the text says why)."""


#: A dynamic table size update to 0: the first bytes of the first block squall sends.
TABLE_SIZE_ZERO: Final = b"\x20"

_FIELDS: Final[dict[Field, bytes]] = {}
_FIELDS_MAX: Final = 4096
_FIELD_MAX_SIZE: Final = 1024  # longer fields are encoded every time, not kept
# The hpack library is imported when the first HTTP/2 connection needs it, not at startup: its
# Huffman tables alone are 2.3 MiB of a worker's memory, which an HTTP/1.1-only server never uses.
_ENCODERS: Final[list[Any]] = []


def _encoder() -> Any:
    if not _ENCODERS:
        import hpack

        encoder = hpack.Encoder()
        encoder.header_table_size = 0
        encoder.encode([])  # the size update: TABLE_SIZE_ZERO, sent by each connection itself
        _ENCODERS.append(encoder)
    return _ENCODERS[0]


def encode(fields: Iterable[Field]) -> bytes:
    """The HPACK block of ``fields`` for a decoder whose dynamic table has size 0."""
    cache = _FIELDS
    try:
        return b"".join([cache[field] for field in fields])
    except (KeyError, TypeError):
        return b"".join([_encode_field(field) for field in fields])


def _encode_field(field: Field) -> bytes:
    field = (field[0], field[1])
    encoded = _FIELDS.get(field)
    if encoded is None:
        encoded = _encoder().encode([field])
        if len(field[0]) + len(field[1]) <= _FIELD_MAX_SIZE:
            if len(_FIELDS) >= _FIELDS_MAX:
                _FIELDS.clear()
            _FIELDS[field] = encoded
    return encoded


class BlockDecoder:
    """``hpack.Decoder`` that tells whether a block changed the dynamic table."""

    __slots__ = ("_decoder", "_table", "generation")

    def __init__(self, max_header_list_size: int) -> None:
        import hpack  # on the first HTTP/2 connection (see _ENCODERS)

        self._decoder = hpack.Decoder(max_header_list_size=max_header_list_size)
        self._table = self._decoder.header_table
        self.generation = 0  # moves whenever a decoded block changed the dynamic table

    def decode(self, block: bytes) -> list[Field]:
        """The fields of ``block``. Raises HeaderListTooLarge past the header list size limit, and
        BadHeaderBlock for a malformed block."""
        table = self._table
        # Entries as ``object``: compiled, a typed tuple would be unboxed and boxed again, losing
        # the identity this check relies on.
        entries: deque[object] = table.dynamic_entries  # type: ignore[assignment]
        newest = entries[0] if entries else None
        count = len(entries)
        size = table.maxsize
        try:
            fields = self._decoder.decode(block, raw=True)
        except Exception as exc:
            raise _translated(exc) from None
        finally:
            now = entries[0] if entries else None
            if len(entries) != count or table.maxsize != size or now is not newest:
                self.generation += 1
        return fields  # type: ignore[return-value]


def _translated(exc: Exception) -> Exception:
    """hpack's errors as this module's (the library is not imported at module level)."""
    import hpack

    if isinstance(exc, hpack.OversizedHeaderListError):
        return HeaderListTooLarge(str(exc))
    if isinstance(exc, hpack.HPACKError):
        return BadHeaderBlock(str(exc))
    return exc
