"""Hostile bytes into the frame decoders: only their documented error types come out, and what
decodes is self-consistent (issue 21).

tests/wire/ already feeds purely random bytes to each decoder and checks round trips of valid
frames; this adds what lies between: valid frames and streams mutated (bytes flipped, inserted,
deleted, truncated, spliced), where a decoder is most likely to be led astray. Whatever a decoder
accepts must re-encode to the bytes it came from (or, where the wire has slack such as the padding
bits of a coil write, decode again to the same value), and every frame a stream decoder yields
must be a run of the bytes fed to it.

ADC_FUZZ_EXAMPLES sets the examples per test (default 150; e.g. 10000 for a campaign).
"""

from __future__ import annotations

import contextlib
import itertools
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adc.drivers import lockboard_protocol as lp
from adc.drivers import modbus_frames as mf

EXAMPLES = int(os.environ.get("ADC_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

boards = st.integers(0, 15)
locks = st.integers(0, 15)
u16 = st.integers(0, 0xFFFF)
units = st.integers(0, 247)

lockboard_frames = st.one_of(
    st.builds(lp.status_request, boards),
    st.builds(lp.unlock_request, boards, locks),
    st.just(lp.query_all_request()),
    st.builds(lp.unlock_all_request, boards),
    st.builds(lp.status_reply, boards, u16, u16),
    st.builds(lp.all_status_reply, boards, u16, u16),
    st.builds(lp.set_unlock_time_request, boards, u16),
    st.builds(lp.read_unlock_time_request, boards),
)

addresses = st.integers(0, 0xFFFF)
requests = st.one_of(
    st.builds(
        lambda f, a, n: mf.ReadRequest(f, a, min(n, 65536 - a)),
        st.sampled_from(mf.BIT_READS),
        st.integers(0, 0xFFFF),
        st.integers(1, mf.MAX_READ_BITS),
    ),
    st.builds(
        lambda f, a, n: mf.ReadRequest(f, a, min(n, 65536 - a)),
        st.sampled_from(mf.REGISTER_READS),
        st.integers(0, 0xFFFF),
        st.integers(1, mf.MAX_READ_REGISTERS),
    ),
    st.builds(mf.WriteSingleRequest, st.just(mf.Function.WRITE_COIL), addresses, st.integers(0, 1)),
    st.builds(mf.WriteSingleRequest, st.just(mf.Function.WRITE_REGISTER), addresses, u16),
    st.builds(
        lambda a, v: mf.WriteMultipleRequest(mf.Function.WRITE_COILS, min(a, 65536 - len(v)), v),
        addresses,
        st.lists(st.integers(0, 1), min_size=1, max_size=64).map(tuple),
    ),
    st.builds(
        lambda a, v: mf.WriteMultipleRequest(
            mf.Function.WRITE_REGISTERS, min(a, 65536 - len(v)), v
        ),
        addresses,
        st.lists(u16, min_size=1, max_size=mf.MAX_WRITE_REGISTERS).map(tuple),
    ),
)
responses = st.one_of(
    st.builds(
        mf.BitsResponse,
        st.sampled_from(mf.BIT_READS),
        st.lists(st.booleans(), min_size=8, max_size=64)
        .map(lambda b: b[: len(b) // 8 * 8])
        .map(tuple),
    ),
    st.builds(
        mf.RegistersResponse,
        st.sampled_from(mf.REGISTER_READS),
        st.lists(u16, max_size=mf.MAX_READ_REGISTERS).map(tuple),
    ),
    st.builds(mf.WriteResponse, st.just(mf.Function.WRITE_COIL), addresses, st.integers(0, 1)),
    st.builds(
        mf.WriteResponse,
        st.sampled_from([mf.Function.WRITE_REGISTER, mf.Function.WRITE_COILS]),
        addresses,
        u16,
    ),
    st.builds(mf.ExceptionResponse, st.integers(1, 0x7F), st.integers(0, 255)),
)


# ------------------------------------------------------------------------------------ mutations
@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few edits: a byte replaced, inserted or deleted, a cut, a span repeated."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat", "stx"]))
        at = draw(st.integers(0, len(out))) if out else 0
        if action == "flip" and at < len(out):
            out[at] = draw(st.integers(0, 255))
        elif action == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete" and at < len(out):
            del out[at : at + draw(st.integers(1, 3))]
        elif action == "truncate":
            del out[at:]
        elif action == "repeat" and at < len(out):
            out[at:at] = out[at : at + draw(st.integers(1, 8))]
        elif action == "stx":
            out[at:at] = bytes([lp.STX])
    return bytes(out)


def mutations_of(frames: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return frames.flatmap(mutated)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# ----------------------------------------------------------------------------------- lock board
@FUZZ
@given(mutations_of(lockboard_frames.map(lp.encode)))
def test_a_mutated_lockboard_frame_decodes_to_itself_or_a_typed_error(data: bytes) -> None:
    try:
        frame = lp.decode(data)
    except lp.LockboardFrameError as err:
        assert str(err)  # noqa: PT017 -- any other exception type fails the test
        return
    assert lp.encode(frame) == data  # accepted bytes are exactly the frame's bytes


@FUZZ
@given(
    st.lists(lockboard_frames.map(lp.encode), min_size=1, max_size=8)
    .map(b"".join)
    .flatmap(mutated),
    st.lists(st.integers(0, 200), max_size=12),
)
def test_a_mutated_lockboard_stream_yields_runs_of_its_own_bytes(
    stream: bytes, cuts: list[int]
) -> None:
    decoder = lp.StreamDecoder()
    frames: list[lp.Frame] = []
    for chunk in chunked(stream, cuts):
        decoder.feed(chunk)
        while True:
            try:
                frame = decoder.next_frame()
            except lp.LockboardFrameError:
                continue
            if frame is None:
                break
            frames.append(frame)
    assert decoder.pending <= len(stream)
    position = 0
    for frame in frames:  # in order, each a run of the stream
        found = stream.find(lp.encode(frame), position)
        assert found >= 0, (frame, stream.hex(" "))
        position = found + len(lp.encode(frame))
    # the same bytes fed whole give the same frames (chunking never matters)
    whole = lp.StreamDecoder()
    whole.feed(stream)
    assert whole.drain()[0] == frames


# --------------------------------------------------------------------------------------- Modbus
def _request_consistent(pdu: bytes, request: mf.Request) -> None:
    again = mf.encode_request(request)
    if isinstance(request, mf.WriteMultipleRequest) and request.function == mf.Function.WRITE_COILS:
        # the last byte's padding bits are slack on the wire: equal after masking them
        assert mf.decode_request(again) == request
        assert again[:-1] == pdu[: len(again) - 1]
    else:
        assert again == pdu


@FUZZ
@given(st.one_of(mutations_of(requests.map(mf.encode_request)), st.binary(max_size=20)))
def test_a_mutated_request_pdu_decodes_consistently_or_to_a_typed_error(pdu: bytes) -> None:
    try:
        request = mf.decode_request(pdu)
    except mf.ModbusFrameError as err:
        assert str(err)  # noqa: PT017 -- any other exception type fails the test
        code = err.exception_code
        assert code is None or isinstance(code, mf.ExceptionCode)
        return
    _request_consistent(pdu, request)
    if isinstance(request, mf.ReadRequest | mf.WriteMultipleRequest):
        count = request.count if isinstance(request, mf.ReadRequest) else len(request.values)
        assert request.address + count <= 65536


@FUZZ
@given(st.one_of(mutations_of(responses.map(mf.encode_response)), st.binary(max_size=20)))
def test_a_mutated_response_pdu_decodes_consistently_or_to_a_typed_error(pdu: bytes) -> None:
    try:
        response = mf.decode_response(pdu)
    except mf.ModbusFrameError as err:
        assert str(err)  # noqa: PT017 -- any other exception type fails the test
        return
    assert mf.encode_response(response) == pdu


@FUZZ
@given(
    st.booleans(),
    st.lists(st.tuples(units, st.one_of(requests.map(mf.encode_request))), min_size=1, max_size=5),
    st.lists(st.tuples(units, responses.map(mf.encode_response)), min_size=1, max_size=5),
    st.data(),
)
def test_a_mutated_rtu_stream_yields_crc_checked_runs_of_its_own_bytes(
    as_requests: bool,
    reqs: list[tuple[int, bytes]],
    resps: list[tuple[int, bytes]],
    data: st.DataObject,
) -> None:
    pairs = reqs if as_requests else resps
    clean = b"".join(mf.encode_rtu(unit, pdu) for unit, pdu in pairs)
    stream = data.draw(mutated(clean))
    decoder = mf.RtuDecoder(requests=as_requests)
    frames: list[mf.RtuFrame] = []
    for chunk in chunked(stream, data.draw(st.lists(st.integers(0, 600), max_size=10))):
        decoder.feed(chunk)
        while True:
            try:
                frame = decoder.next_frame()
            except mf.ModbusFrameError:
                continue
            if frame is None:
                break
            frames.append(frame)
    rest, _ = decoder.flush()  # never raises
    assert decoder.pending == 0
    for frame in [*frames, *rest]:
        assert 0 <= frame.unit <= 255
        assert mf.encode_rtu(frame.unit, frame.pdu) in stream
        # the PDU inside a good CRC is still hostile: only the typed error may come out
        with contextlib.suppress(mf.ModbusFrameError):
            (mf.decode_request if as_requests else mf.decode_response)(frame.pdu)


@FUZZ
@given(
    st.lists(
        st.tuples(u16, units, st.one_of(requests.map(mf.encode_request))), min_size=1, max_size=5
    ),
    st.data(),
)
def test_a_mutated_mbap_stream_yields_runs_of_its_own_bytes(
    adus: list[tuple[int, int, bytes]], data: st.DataObject
) -> None:
    clean = b"".join(mf.encode_mbap(t, u, pdu) for t, u, pdu in adus)
    stream = data.draw(mutated(clean))
    decoder = mf.MbapDecoder()
    for chunk in chunked(stream, data.draw(st.lists(st.integers(0, 600), max_size=10))):
        decoder.feed(chunk)
        while True:
            try:
                frame = decoder.next_frame()
            except mf.ModbusFrameError:
                continue
            if frame is None:
                break
            assert 1 <= len(frame.pdu) <= mf.MAX_PDU
            assert mf.encode_mbap(frame.transaction, frame.unit, frame.pdu) in stream
            with contextlib.suppress(mf.ModbusFrameError):
                mf.decode_request(frame.pdu)
    assert decoder.pending < 6 + mf.MAX_PDU + 1
