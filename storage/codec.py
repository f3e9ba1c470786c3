"""How stored webhook bodies are compressed: zstd with a dictionary trained on order payloads.

An order body shares nearly all of its keys, nesting and layout with every other order body, but at 3.6 KB it
is too short for zstd to learn them from itself: plain zstd keeps ~39 % of it, zstd with a dictionary that
already holds that structure ~21 %. `encode` returns the bytes to store and the name of their encoding, kept
beside them; `decode` turns any pair this module ever produced back into the exact bytes received. An
encoding is `""` (stored as received) or `zstd:<dictionary name>`.

Dictionaries are files `dictionaries/<name>.zdict` inside this package (installed as
`site-packages/storage/dictionaries/`), made by `python -m storage.train_dictionary` and never changed
afterwards: a stored body keeps the name of the dictionary it was compressed with, so old names stay in
`DICTIONARIES` for good and a new dictionary is a new file, one line there and `CURRENT` moved to it.

Projections are compressed with their own dictionary (`projections-N`, trained on stored projections: about a
quarter smaller than with the orders dictionary), by `pack`, whose frames name their dictionary by themselves.

Reading a body by hand: `orderhooks event ID --raw` prints it decoded. With `redis-cli` alone, a `zstd:orders-1`
body key is an ordinary zstd frame naming its dictionary's id (so a wrong dictionary is refused, not misread),
holding the headers' line and then the body (`storage.events.pack_body`)::

    redis-cli --raw GET orderhooks:body:genstore:SHOP:ID | head -c -1 > body.zst   # --raw appends a newline
    zstd -dc -D "$(python -c 'import storage.codec as c; print(c.DICTIONARY_DIR)')/orders-1.zdict" body.zst | tail -n +2
"""

from __future__ import annotations

import threading
from pathlib import Path

import zstandard

__all__ = ["CURRENT", "CURRENT_PROJECTIONS", "DICTIONARIES", "IDENTITY", "decode", "dictionary", "encode"]

IDENTITY = ""
PREFIX = "zstd:"
DICTIONARY_DIR = Path(__file__).resolve().parent / "dictionaries"
# Every dictionary a body may be stored with: name -> the id written in the file and in each frame.
DICTIONARIES: dict[str, int] = {
    "orders-1": 32769,
    "projections-1": 36865,
}
CURRENT = "orders-1"  # bodies (`encode`)
CURRENT_PROJECTIONS = "projections-1"  # projections (`pack`): trained on stored projections, whose JSON differs

# Measured on the 3,559-byte `orders/create` example and a 3,506-byte held-out varied body, orders-1, one core:
#   level  encode  decode  example  held-out
#     1    11.6 µs  4.0 µs  24.5 %   23.3 %
#     3    10.4 µs  3.4 µs  20.9 %   20.2 %    (no dictionary: 18.8 µs, 6.6 µs, 38.7 %, 39.3 %)
#     6    39.0 µs  3.4 µs  19.9 %   18.9 %
#     9    75.5 µs  3.4 µs  19.0 %   17.7 %
# Level 3 is as fast as level 1 here and 4 points smaller; 6 and up cost 4-7x the time for 1-2 points.
LEVEL = 3
# Shorter bodies are stored as received. A frame costs 15 bytes before any content, and under 256 bytes the
# most we measured saved was 127 bytes (a 238-byte refund-like body -> 111), a small part of the event's
# record in Redis; such bodies (pings, errors) are rare and stay readable there. Order deliveries are 0.6-5 KB.
MIN_SIZE = 256
# Bodies above this are stored as received too: no receiver takes them (its default limit is 1 MiB), and
# `decode` can then refuse a corrupt header claiming a larger size instead of trying to allocate it.
MAX_SIZE = 64 * 1024 * 1024
# Compress only when that saves at least this fraction (random or already compressed bodies do not).
MIN_SAVING = 0.10
# The checksum costs 4 bytes (0.1 % of an order body) and ~0.5 µs; without it half of all single-bit flips
# in a stored frame decoded, silently, to other bytes, with it none did. The content size (1-2 bytes) lets
# `decode` allocate exactly once and check the size; the dictionary id (2 bytes) makes a wrong dictionary an
# error, also for the `zstd` command line.
FRAME_OPTIONS = {"write_checksum": True, "write_content_size": True, "write_dict_id": True}

_loaded: dict[str, zstandard.ZstdCompressionDict] = {}
_load_lock = threading.Lock()


def dictionary(name: str) -> zstandard.ZstdCompressionDict:
    """The packaged dictionary `name` (one of `DICTIONARIES`), read once per process."""
    loaded = _loaded.get(name)
    if loaded is None:
        with _load_lock:
            loaded = _loaded.get(name)
            if loaded is None:
                loaded = _loaded[name] = _load(name)
    return loaded


def _load(name: str) -> zstandard.ZstdCompressionDict:
    data = (DICTIONARY_DIR / f"{name}.zdict").read_bytes()
    loaded = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
    if loaded.dict_id() != DICTIONARIES[name]:
        raise RuntimeError(f"dictionary file {name}.zdict has id {loaded.dict_id()}, expected {DICTIONARIES[name]}: "
                           "a dictionary must never change once bodies are stored with it")
    if name in (CURRENT, CURRENT_PROJECTIONS):
        # Digested once and shared by every thread's compressor (~80 KB each instead of ~470 KB).
        loaded.precompute_compress(level=LEVEL)
    # One round trip: proves the file works, and builds the shared decompression tables here, under the lock
    # (zstandard builds them lazily, without one).
    probe = b'{"order": {}}'
    frame = zstandard.ZstdCompressor(level=LEVEL, dict_data=loaded, **FRAME_OPTIONS).compress(probe)
    if zstandard.ZstdDecompressor(dict_data=loaded).decompress(frame) != probe:
        raise RuntimeError(f"dictionary file {name}.zdict does not round-trip")
    return loaded


class _Contexts(threading.local):
    """zstandard's (de)compressors are not thread-safe but cost far more to make than to use: one per thread."""

    def __init__(self) -> None:
        self.compressors: dict[str, zstandard.ZstdCompressor] = {}
        self.decompressors: dict[str, zstandard.ZstdDecompressor] = {}


_contexts = _Contexts()


def _compressor(name: str = CURRENT) -> zstandard.ZstdCompressor:
    compressor = _contexts.compressors.get(name)
    if compressor is None:
        compressor = _contexts.compressors[name] = zstandard.ZstdCompressor(
            level=LEVEL, dict_data=dictionary(name), **FRAME_OPTIONS)
    return compressor


def _decompressor(name: str) -> zstandard.ZstdDecompressor:
    decompressor = _contexts.decompressors.get(name)
    if decompressor is None:
        decompressor = _contexts.decompressors[name] = zstandard.ZstdDecompressor(dict_data=dictionary(name))
    return decompressor


def encode(raw: bytes, name: str = CURRENT) -> tuple[bytes, str]:
    """The bytes to store for the body `raw`, and the name of their encoding (`""`: stored as received);
    compressed with the dictionary `name` when that pays."""
    if not MIN_SIZE <= len(raw) <= MAX_SIZE:
        return raw, IDENTITY
    packed = _compressor(name).compress(raw)
    if len(packed) > len(raw) * (1 - MIN_SAVING):
        return raw, IDENTITY
    return packed, PREFIX + name


def decode(stored: bytes, encoding: str | bytes | None) -> bytes:
    """The exact body `encode` was given; ValueError for an unknown encoding or stored bytes it did not write."""
    if isinstance(encoding, bytes):
        encoding = encoding.decode("utf-8", "replace")
    if not encoding:
        return stored
    name = encoding.removeprefix(PREFIX)
    if name == encoding or name not in DICTIONARIES:
        raise ValueError(f"unknown body encoding {encoding!r}")
    try:
        size = zstandard.frame_content_size(stored)
        if not 0 < size <= MAX_SIZE:  # -1: unknown; 0 or huge: `encode` never writes such a frame
            raise zstandard.ZstdError(f"header gives content size {size}")
        raw = _decompressor(name).decompress(stored, allow_extra_data=False)
    except zstandard.ZstdError as error:
        raise ValueError(f"stored body is not a valid {encoding} frame: {error}") from None
    if len(raw) != size:
        raise ValueError(f"stored body is not a valid {encoding} frame: {len(raw)} bytes where the header says {size}")
    return raw


# A zstd frame's first four bytes. JSON text never starts with them, so a stored projection (always a JSON
# object) needs no encoding kept beside it: `pack`'s output says by itself what it is.
MAGIC = b"\x28\xb5\x2f\xfd"
_NAMES_BY_ID = {dict_id: name for name, dict_id in DICTIONARIES.items()}


def pack(text: bytes) -> bytes:
    """JSON text as stored where no encoding is kept beside it (projections): a zstd frame naming its
    dictionary when that pays, else the text as it is. `unpack` reads both, and text stored before."""
    if text[:4] == MAGIC:
        raise ValueError("pack takes JSON text, which never starts with the zstd magic")
    return encode(text, CURRENT_PROJECTIONS)[0]


def unpack(stored: bytes) -> bytes:
    """What `pack` was given; ValueError for a frame of an unknown dictionary or a corrupt one."""
    if stored[:4] != MAGIC:
        return stored
    try:
        dict_id = zstandard.get_frame_parameters(stored).dict_id
    except zstandard.ZstdError as error:
        raise ValueError(f"stored value is not a valid zstd frame: {error}") from None
    name = _NAMES_BY_ID.get(dict_id)
    if name is None:
        raise ValueError(f"stored value is a zstd frame of unknown dictionary id {dict_id}")
    return decode(stored, PREFIX + name)
