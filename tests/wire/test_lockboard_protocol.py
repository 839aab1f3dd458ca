"""CU16 lock-board frames: the published examples, round trips, garbage, chunked streams."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adc.drivers import lockboard_protocol as lp
from adc.drivers.lockboard_protocol import Cmd, Frame, LockboardFrameError, StreamDecoder

boards = st.integers(0, 15)
locks = st.integers(0, 15)
bits16 = st.integers(0, 0xFFFF)

frames = st.one_of(
    st.builds(lp.status_request, boards),
    st.builds(lp.unlock_request, boards, locks),
    st.just(lp.query_all_request()),
    st.builds(lp.unlock_all_request, boards),
    st.builds(lp.status_reply, boards, bits16, bits16),
    st.builds(lp.all_status_reply, boards, bits16, bits16),
    st.builds(lp.set_unlock_time_request, boards, bits16),
    st.builds(lp.read_unlock_time_request, boards),
)


def test_published_examples() -> None:
    assert lp.encode(lp.status_request(0)) == bytes.fromhex("02 00 30 03 35")
    assert lp.encode(lp.unlock_request(0, 0)) == bytes.fromhex("02 00 31 03 36")
    # board 1, lock 3: ADDR = 1 << 4 | 3
    assert lp.encode(lp.unlock_request(1, 3)) == bytes.fromhex("02 13 31 03 49")


def test_public_query_all_goes_to_the_broadcast_address_and_0x36_is_a_status() -> None:
    assert lp.encode(lp.query_all_request()) == bytes.fromhex("02 f0 32 03 27")
    wire = lp.encode(lp.all_status_reply(1, locks=0x0003, inputs=0x8000))
    assert wire[:3] == bytes.fromhex("02 10 36") and len(wire) == 9
    assert lp.decode(wire) == lp.all_status_reply(1, 0x0003, 0x8000)


def test_unlock_time_frames() -> None:
    # 500 ms to board 2: 02 20 37 01 F4 03 SUM; read: 02 20 38 03 5D
    assert lp.encode(lp.set_unlock_time_request(2, 500)) == bytes.fromhex("02 20 37 01 f4 03 51")
    assert lp.encode(lp.read_unlock_time_request(2)) == bytes.fromhex("02 20 38 03 5d")
    assert lp.decode(bytes.fromhex("02 20 37 01 f4 03 51")).ms == 500


def test_status_reply_layout() -> None:
    wire = lp.encode(lp.status_reply(2, locks=0x8001, inputs=0x0100))
    assert wire == bytes(
        [
            0x02,
            0x20,
            0x35,
            0x01,
            0x80,
            0x00,
            0x01,
            0x03,
            (0x02 + 0x20 + 0x35 + 0x01 + 0x80 + 0x01 + 0x03) & 0xFF,
        ]
    )
    assert len(wire) == 9


@given(frames)
def test_every_frame_kind_round_trips(frame: Frame) -> None:
    wire = lp.encode(frame)
    assert len(wire) == lp.FRAME_LENGTH[frame.cmd]
    assert lp.decode(wire) == frame


@given(frames, st.integers(0, 8), st.integers(1, 255))
def test_any_corrupted_byte_is_rejected(frame: Frame, pos: int, flip: int) -> None:
    wire = bytearray(lp.encode(frame))
    pos %= len(wire)
    wire[pos] ^= flip
    try:
        decoded = lp.decode(bytes(wire))
    except LockboardFrameError:
        return
    # A single corrupted byte can only pass if it turned into another valid frame of equal length,
    # which a one-byte change cannot do without breaking the checksum.
    pytest.fail(f"corrupted frame decoded as {decoded}")


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("02 00 30 03", "too short"),
        ("03 00 30 03 36", "STX"),
        ("02 00 39 03 3e", "unknown command"),
        ("02 00 30 04 36", "ETX"),
        ("02 00 30 03 36", "checksum"),
        ("02 00 30 03 35 00", "must be 5 bytes"),
    ],
)
def test_decode_says_what_is_wrong(wire: str, reason: str) -> None:
    with pytest.raises(LockboardFrameError, match=reason):
        lp.decode(bytes.fromhex(wire))


@given(st.binary(max_size=64))
def test_random_bytes_into_decode_raise_only_the_typed_error(data: bytes) -> None:
    with contextlib.suppress(LockboardFrameError):
        lp.decode(data)


def _decode_stream(chunks: list[bytes]) -> tuple[list[Frame], int]:
    decoder = StreamDecoder()
    out: list[Frame] = []
    errors = 0
    for chunk in chunks:
        decoder.feed(chunk)
        got, errs = decoder.drain()
        out += got
        errors += len(errs)
    return out, errors


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


@given(st.binary(max_size=200), st.lists(st.integers(0, 400), max_size=30))
def test_random_bytes_into_the_stream_decoder_raise_only_the_typed_error(
    data: bytes, cuts: list[int]
) -> None:
    decoder = StreamDecoder()
    for chunk in _cut(data, cuts):
        decoder.feed(chunk)
        while True:
            try:
                if decoder.next_frame() is None:
                    break
            except LockboardFrameError:
                continue
    # Whatever is left is a possible frame start still waiting for bytes.
    assert decoder.pending < lp.MAX_FRAME_LENGTH


@given(st.lists(frames, max_size=20), st.lists(st.integers(0, 400), max_size=40))
def test_a_stream_cut_into_random_chunks_decodes_to_the_same_frames(
    sent: list[Frame], cuts: list[int]
) -> None:
    data = b"".join(lp.encode(f) for f in sent)
    got, errors = _decode_stream(_cut(data, cuts))
    assert got == sent
    assert errors == 0


@given(
    st.lists(st.tuples(st.binary(max_size=12), frames), max_size=12),
    st.lists(st.integers(0, 400), max_size=40),
)
def test_decoder_resynchronises_after_garbage(
    parts: list[tuple[bytes, Frame]], cuts: list[int]
) -> None:
    # Garbage without STX bytes cannot hide a frame start, so every frame after it must come out.
    clean = [(junk.replace(b"\x02", b"\x00"), frame) for junk, frame in parts]
    data = b"".join(junk + lp.encode(frame) for junk, frame in clean)
    whole, errors_whole = _decode_stream([data])
    chunked, errors_chunked = _decode_stream(_cut(data, cuts))
    assert whole == [frame for _, frame in clean]
    assert chunked == whole
    assert errors_chunked == errors_whole == sum(1 for junk, _ in clean if junk)


def test_resync_on_next_start_byte_after_a_broken_frame() -> None:
    good = lp.encode(lp.status_reply(1, 0x00FF, 0xF000))
    broken = bytes.fromhex("02 10 35 ff")  # a status reply cut short, then a good one
    decoder = StreamDecoder()
    decoder.feed(broken + good)
    got, errors = decoder.drain()
    assert got == [lp.status_reply(1, 0x00FF, 0xF000)]
    assert len(errors) == 1


def test_frame_rejects_out_of_range_fields() -> None:
    with pytest.raises(ValueError, match="0-15"):
        Frame(Cmd.UNLOCK, 16, 0)
    with pytest.raises(ValueError, match="only a status reply"):
        Frame(Cmd.UNLOCK, 0, 0, locks=1)
    with pytest.raises(ValueError, match="only an unlock-time frame"):
        Frame(Cmd.STATUS, 0, 0, ms=500)
