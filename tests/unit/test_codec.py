"""The stored-body codec: every body comes back byte for byte, order bodies shrink to a fifth, and bytes it
did not write are refused with ValueError, never decoded into something else."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from importlib.resources import files
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import codec
from storage.codec import CURRENT, DICTIONARIES, IDENTITY, decode, encode
from storage.train_dictionary import held_out_body

SAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "samples"
SAMPLE_FILES = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".json", ".txt"))
ORDER = (SAMPLES / "orders_create.json").read_bytes()
ZSTD = "zstd:" + CURRENT

# `refunds_create.json` as orders-1 wrote it: a dictionary, once used, must decode its frames forever.
ORDERS_1_FRAME = base64.b64decode(
    "KLUv/WYBgKMBPQUAI4QKI2WGafqupu9Z+6V/t/3MzmpXP3oIqXGArDFESI81zJJleosWIcPHsbMPMvz4u3LhQxL7gIroRx8RG9AN"
    "TTzOJxNbhrcgySuD+7+szjeaX/Sa0ECdyzeFvbsZ+nxxN6a+z5U7ha+jd1+RKyXvcho81GQCoCNbpUnlqXr0zNEgyhMVKmjneQBw"
    "8X95923DX0JeyI94KGlTDKjd1YvuwSZorTJLjUK6nt8Q"
)
ORDERS_1_SHA256 = "15ca6162aeb2fec0462f76374c633f4491fca1a5b1c49b2c993722c3d75758bd"
PROJECTIONS_1_SHA256 = "56b932b1e10f379b8c37f47d1eebfdcacc4a1f1d4518b53b3e974caef8df5a01"


def round_trip(raw: bytes) -> tuple[bytes, str]:
    stored, encoding = encode(raw)
    assert decode(stored, encoding) == raw
    assert decode(stored, encoding.encode()) == raw  # as a Redis hash field gives it back
    return stored, encoding


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_every_sample_round_trips_compressed(path: Path):
    raw = path.read_bytes()
    stored, encoding = round_trip(raw)
    assert encoding == ZSTD
    assert len(stored) < len(raw) * 0.5


@pytest.mark.parametrize("raw", [
    b"",
    b"{",
    b"\x00",
    b"\xff\xfe" + "not utf-8: caf\u00e9".encode("latin-1") * 40,
    b"key=value&other=" + b"x" * 500,
    "{\"note\": \"\u00e9\u00e8\u4e2d\u6587 \U0001f600\"}".encode() * 20,
    b"\xed\xa0\x80" * 200,  # an encoded lone surrogate: bytes no UTF-8 decoder accepts
    ORDER + b"\x00trailing",
    ORDER[:-1],
], ids=["empty", "1-byte", "nul", "latin-1", "form", "utf-8", "surrogates", "json+junk", "cut"])
def test_any_bytes_round_trip(raw: bytes):
    round_trip(raw)


def test_random_megabyte_is_stored_as_received():
    raw = os.urandom(1024 * 1024)
    stored, encoding = round_trip(raw)
    assert (stored, encoding) == (raw, IDENTITY)


@given(st.binary(max_size=4096))
@settings(max_examples=300, deadline=None)
def test_round_trip_arbitrary_bytes(raw: bytes):
    round_trip(raw)


@given(st.integers(0, len(ORDER)), st.integers(0, len(ORDER)), st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_round_trip_edited_order_bodies(start: int, end: int, patch: bytes):
    """Bodies near real ones, so the compressed path is exercised as much as the identity one."""
    stored, encoding = round_trip(ORDER[:start] + patch + ORDER[end:])
    if encoding:
        assert len(stored) <= len(ORDER[:start] + patch + ORDER[end:]) * (1 - codec.MIN_SAVING)


def test_order_body_compresses_to_under_a_quarter():
    stored, _ = encode(ORDER)
    assert len(stored) <= 0.25 * len(ORDER)  # measured 745 / 3,559 = 20.9 %


def test_held_out_body_compresses_as_well():
    """A varied body the dictionary was not trained on: the ratio is not an artefact of the examples."""
    body = held_out_body()
    assert json.loads(body)["order"]["orderId"] not in ORDER.decode()
    stored, encoding = round_trip(body)
    assert encoding == ZSTD
    assert len(stored) <= 0.25 * len(body)  # measured 709 / 3,506 = 20.2 %


def test_short_bodies_are_stored_as_received():
    short = ORDER[: codec.MIN_SIZE - 1]
    assert encode(short) == (short, IDENTITY)
    assert encode(ORDER[: codec.MIN_SIZE])[1] == ZSTD


@pytest.mark.parametrize("encoding", [None, "", b""])
def test_identity_encoding(encoding):
    assert decode(b"\x28\xb5\x2f\xfd anything", encoding) == b"\x28\xb5\x2f\xfd anything"


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "zstd:", "zstd:orders-0", "zstd:orders-999", "ZSTD:orders-1",
                                      "orders-1", " zstd:orders-1", b"br", b"zstd:\xff"])
def test_unknown_encoding_is_a_value_error_naming_it(encoding):
    stored, _ = encode(ORDER)
    shown = encoding.decode("utf-8", "replace") if isinstance(encoding, bytes) else encoding
    with pytest.raises(ValueError, match="unknown body encoding") as error:
        decode(stored, encoding)
    assert repr(shown) in str(error.value)


def test_a_frame_of_another_dictionary_is_refused():
    other = zstandard.ZstdCompressionDict(ORDER * 3, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    frame = zstandard.ZstdCompressor(dict_data=other, **codec.FRAME_OPTIONS).compress(ORDER)
    with pytest.raises(ValueError, match=ZSTD):
        decode(frame, ZSTD)


@pytest.mark.parametrize("stored", [
    b"",
    b"\x28",
    b"{\"order\": {}}" * 30,
    b"\x28\xb5\x2f\xfd",
    b"\x28\xb5\x2f\xfd" + b"\x00" * 40,
    # a header claiming 2**40 bytes: refused without trying to allocate them
    b"\x28\xb5\x2f\xfd\xe0\x00\x00\x00\x00\x00\x01\x00\x00\x01\x00\x00",
], ids=["empty", "1-byte", "json", "magic", "magic+zeros", "huge-size"])
def test_bytes_that_are_no_frame_are_a_value_error(stored: bytes):
    with pytest.raises(ValueError, match=ZSTD):
        decode(stored, ZSTD)


def test_cut_or_extended_frames_are_a_value_error():
    stored, encoding = encode(ORDER)
    for broken in (stored[:-1], stored[:-4], stored[: len(stored) // 2], stored[:12], stored + b"\x00",
                   stored + stored):
        with pytest.raises(ValueError, match=encoding):
            decode(broken, encoding)


@pytest.mark.parametrize("bit", [0x01, 0x08, 0x80])
def test_no_flipped_bit_decodes_to_other_bytes(bit: int):
    """Every single-bit corruption of a stored frame is refused (or, in a bit zstd ignores, harmless)."""
    stored, encoding = encode(ORDER)
    for position in range(len(stored)):
        broken = bytearray(stored)
        broken[position] ^= bit
        try:
            assert decode(bytes(broken), encoding) == ORDER, f"byte {position} flipped decodes to other bytes"
        except ValueError:
            pass


def test_frames_written_with_orders_1_decode_forever():
    assert decode(ORDERS_1_FRAME, "zstd:orders-1") == (SAMPLES / "refunds_create.json").read_bytes()


def test_the_packaged_dictionary_is_the_one_encode_names():
    stored, encoding = encode(ORDER)
    name = encoding.removeprefix("zstd:")
    packaged = files("storage").joinpath("dictionaries", f"{name}.zdict").read_bytes()
    assert codec.dictionary(name).as_bytes() == packaged
    assert codec.dictionary(name).dict_id() == DICTIONARIES[name] == zstandard.get_frame_parameters(stored).dict_id
    assert codec.dictionary(name) is codec.dictionary(name)  # read once


def test_every_dictionary_is_registered_packaged_and_unchanged():
    packaged = {p.stem for p in codec.DICTIONARY_DIR.glob("*.zdict")}
    assert packaged == set(DICTIONARIES) and CURRENT in DICTIONARIES
    for name in DICTIONARIES:
        assert codec.dictionary(name).dict_id() == DICTIONARIES[name]
    digest = hashlib.sha256((codec.DICTIONARY_DIR / "orders-1.zdict").read_bytes()).hexdigest()
    assert digest == ORDERS_1_SHA256, "orders-1.zdict must never change: train orders-2 instead"
    digest = hashlib.sha256((codec.DICTIONARY_DIR / "projections-1.zdict").read_bytes()).hexdigest()
    assert digest == PROJECTIONS_1_SHA256, "projections-1.zdict must never change: train projections-2 instead"


def test_projections_are_packed_with_their_own_dictionary_and_those_packed_before_still_read():
    """A projection's JSON is not a delivery's: a dictionary trained on projections keeps about a quarter less
    of it. Projections packed with the orders dictionary by the previous release still read."""
    from schemas import merge, normalize
    from schemas.samples import example_for_topic
    from storage.projection import dump_text
    from storage.train_dictionary import HELD_OUT_SEED, projection_samples

    event = normalize("orders/paid", example_for_topic("orders/paid"))
    texts = [dump_text(merge(None, "orders/paid", "e1", event).projection),  # as `storage.projection` stores it
             projection_samples(1, HELD_OUT_SEED)[0]]  # drawn from a seed the training never used
    for text in texts:
        packed = codec.pack(text)
        assert zstandard.get_frame_parameters(packed).dict_id == DICTIONARIES["projections-1"]
        before, _ = encode(text, "orders-1")  # as the previous release packed it
        assert len(packed) < len(before) * 0.85, (len(packed), len(before))
        assert codec.unpack(packed) == text and codec.unpack(before) == text


def test_threads_encode_and_decode_at_the_same_time():
    bodies = [p.read_bytes() for p in SAMPLE_FILES] + [held_out_body(), os.urandom(5000), b"short"]
    frames = [encode(body) for body in bodies]
    start = threading.Barrier(4)
    failures: list[str] = []
    compressors: list[zstandard.ZstdCompressor] = []  # held, so no two can share an id

    def work(offset: int) -> None:
        start.wait()
        compressors.append(codec._compressor())
        for i in range(300):
            k = (i + offset) % len(bodies)
            if decode(*frames[k]) != bodies[k] or decode(*encode(bodies[k])) != bodies[k]:
                failures.append(f"thread {offset}, body {k}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    assert len({id(c) for c in compressors}) == 4  # one compressor per thread...
    assert codec._compressor() is codec._compressor()  # ...made once and reused


def test_pack_is_self_describing_and_reads_plain_json_stored_before():
    from schemas import merge, normalize
    from schemas.samples import example_for_topic

    event = normalize("orders/create", example_for_topic("orders/create"))
    text = json.dumps(merge(None, "orders/create", "e1", event).projection.to_json(), sort_keys=True).encode()
    packed = codec.pack(text)
    assert packed[:4] == codec.MAGIC and len(packed) < len(text) * 0.4
    assert codec.unpack(packed) == text
    assert codec.unpack(text) == text  # a projection written uncompressed reads as it is
    assert codec.pack(b"{}") == b"{}"  # too short to pay: as it is


def test_unpack_refuses_an_unknown_dictionary_and_pack_refuses_non_json():
    plain = zstandard.ZstdCompressor().compress(b'{"a": 1}' * 100)  # no dictionary: id 0
    with pytest.raises(ValueError, match="unknown dictionary id 0"):
        codec.unpack(plain)
    with pytest.raises(ValueError):
        codec.pack(codec.MAGIC + b"{}")
