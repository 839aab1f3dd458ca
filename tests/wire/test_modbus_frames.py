"""Modbus PDUs and RTU/TCP framing: round trips, garbage, chunked streams, and agreement with
pymodbus's own encoder (an implementation we did not write)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adc.drivers import modbus_frames as mf
from adc.drivers.modbus_frames import (
    BitsResponse,
    ExceptionResponse,
    Function,
    MbapDecoder,
    ModbusFrameError,
    ReadRequest,
    RegistersResponse,
    RtuDecoder,
    WriteMultipleRequest,
    WriteResponse,
    WriteSingleRequest,
)

u16 = st.integers(0, 0xFFFF)
units = st.integers(0, 247)


@st.composite
def reads(draw: st.DrawFn) -> ReadRequest:
    function = draw(st.sampled_from(list(mf.BIT_READS + mf.REGISTER_READS)))
    limit = mf.MAX_READ_BITS if function in mf.BIT_READS else mf.MAX_READ_REGISTERS
    count = draw(st.integers(1, limit))
    return ReadRequest(function, draw(st.integers(0, 65536 - count)), count)


@st.composite
def multi_writes(draw: st.DrawFn) -> WriteMultipleRequest:
    function = draw(st.sampled_from([Function.WRITE_COILS, Function.WRITE_REGISTERS]))
    top = 1 if function == Function.WRITE_COILS else 0xFFFF
    limit = 100 if function == Function.WRITE_COILS else mf.MAX_WRITE_REGISTERS
    values = draw(st.lists(st.integers(0, top), min_size=1, max_size=limit))
    return WriteMultipleRequest(function, draw(st.integers(0, 65536 - len(values))), tuple(values))


requests = st.one_of(
    reads(),
    st.builds(WriteSingleRequest, st.just(Function.WRITE_COIL), u16, st.integers(0, 1)),
    st.builds(WriteSingleRequest, st.just(Function.WRITE_REGISTER), u16, u16),
    multi_writes(),
)
responses = st.one_of(
    st.builds(
        BitsResponse,
        st.sampled_from(mf.BIT_READS),
        st.lists(st.booleans(), max_size=31).map(
            lambda b: tuple(b + [False] * (-len(b) % 8))  # packed bits come back in whole bytes
        ),
    ),
    st.builds(
        RegistersResponse,
        st.sampled_from(mf.REGISTER_READS),
        st.lists(u16, max_size=125).map(tuple),
    ),
    st.builds(WriteResponse, st.just(Function.WRITE_COIL), u16, st.integers(0, 1)),
    st.builds(
        WriteResponse,
        st.sampled_from([Function.WRITE_REGISTER, Function.WRITE_COILS, Function.WRITE_REGISTERS]),
        u16,
        u16,
    ),
    st.builds(ExceptionResponse, st.sampled_from(list(Function)), st.integers(1, 0x0B)),
)


@given(requests)
def test_every_request_kind_round_trips(request: mf.Request) -> None:
    assert mf.decode_request(mf.encode_request(request)) == request


@given(responses)
def test_every_response_kind_round_trips(response: mf.Response) -> None:
    assert mf.decode_response(mf.encode_response(response)) == response


@given(units, requests)
def test_rtu_request_round_trips(unit: int, request: mf.Request) -> None:
    decoder = RtuDecoder(requests=True)
    decoder.feed(mf.encode_rtu(unit, mf.encode_request(request)))
    frame = decoder.next_frame()
    assert frame is not None and frame.unit == unit
    assert mf.decode_request(frame.pdu) == request
    assert decoder.pending == 0


@given(units, responses)
def test_rtu_response_round_trips(unit: int, response: mf.Response) -> None:
    decoder = RtuDecoder(requests=False)
    decoder.feed(mf.encode_rtu(unit, mf.encode_response(response)))
    frame = decoder.next_frame()
    assert frame is not None and frame.unit == unit
    assert mf.decode_response(frame.pdu) == response


@given(u16, units, st.one_of(requests.map(mf.encode_request), responses.map(mf.encode_response)))
def test_mbap_round_trips(transaction: int, unit: int, pdu: bytes) -> None:
    decoder = MbapDecoder()
    decoder.feed(mf.encode_mbap(transaction, unit, pdu))
    assert decoder.next_frame() == mf.MbapFrame(transaction, unit, pdu)


def test_crc_of_a_known_frame() -> None:
    # Read 1 holding register at 0 from unit 1: the frame every Modbus tutorial shows.
    assert mf.encode_rtu(
        1, mf.encode_request(ReadRequest(Function.READ_HOLDING_REGISTERS, 0, 1))
    ) == (bytes.fromhex("01 03 00 00 00 01 84 0a"))


@given(units, reads())
def test_rtu_read_requests_match_pymodbus(unit: int, request: ReadRequest) -> None:
    from pymodbus.framer import FramerRTU
    from pymodbus.pdu import DecodePDU
    from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadDiscreteInputsRequest
    from pymodbus.pdu.register_message import (
        ReadHoldingRegistersRequest,
        ReadInputRegistersRequest,
    )

    cls = {
        Function.READ_COILS: ReadCoilsRequest,
        Function.READ_DISCRETE_INPUTS: ReadDiscreteInputsRequest,
        Function.READ_HOLDING_REGISTERS: ReadHoldingRegistersRequest,
        Function.READ_INPUT_REGISTERS: ReadInputRegistersRequest,
    }[request.function]
    theirs = FramerRTU(DecodePDU(False)).buildFrame(
        cls(address=request.address, count=request.count, dev_id=unit)
    )
    assert mf.encode_rtu(unit, mf.encode_request(request)) == theirs


@given(st.integers(1, 247), st.lists(u16, min_size=1, max_size=125))
def test_rtu_register_responses_decode_in_pymodbus(unit: int, registers: list[int]) -> None:
    from pymodbus.framer import FramerRTU
    from pymodbus.pdu import DecodePDU

    wire = mf.encode_rtu(
        unit, mf.encode_response(RegistersResponse(Function.READ_INPUT_REGISTERS, tuple(registers)))
    )
    used, pdu = FramerRTU(DecodePDU(False)).handleFrame(wire, unit, 0)
    assert used == len(wire)
    assert pdu is not None and list(pdu.registers) == registers


@pytest.mark.parametrize(
    ("pdu", "code"),
    [
        ("07", mf.ExceptionCode.ILLEGAL_FUNCTION),  # read exception status: not served
        ("03 00 00 00 00", mf.ExceptionCode.ILLEGAL_VALUE),  # count 0
        ("03 00 00 00 7e", mf.ExceptionCode.ILLEGAL_VALUE),  # 126 registers
        ("01 00 00 07 d1", mf.ExceptionCode.ILLEGAL_VALUE),  # 2001 bits
        ("03 ff ff 00 02", mf.ExceptionCode.ILLEGAL_ADDRESS),  # runs past 65535
        ("05 00 01 12 34", mf.ExceptionCode.ILLEGAL_VALUE),  # coil value not FF00/0000
        ("10 00 00 00 02 03 00 01 00", mf.ExceptionCode.ILLEGAL_VALUE),  # byte count wrong
    ],
)
def test_bad_requests_carry_the_exception_to_answer(pdu: str, code: mf.ExceptionCode) -> None:
    with pytest.raises(ModbusFrameError) as info:
        mf.decode_request(bytes.fromhex(pdu))
    assert info.value.exception_code == code


@given(st.binary(max_size=300))
def test_random_bytes_into_pdu_decoders_raise_only_the_typed_error(data: bytes) -> None:
    for decode in (mf.decode_request, mf.decode_response):
        with contextlib.suppress(ModbusFrameError):
            decode(data)


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


def _drain(decoder: RtuDecoder | MbapDecoder, chunks: list[bytes]) -> tuple[list[object], int]:
    frames: list[object] = []
    errors = 0
    for chunk in chunks:
        decoder.feed(chunk)
        while True:
            try:
                frame = decoder.next_frame()
            except ModbusFrameError:
                errors += 1
                continue
            if frame is None:
                break
            frames.append(frame)
    return frames, errors


@given(st.binary(max_size=300), st.lists(st.integers(0, 600), max_size=30), st.booleans())
def test_random_bytes_into_stream_decoders_raise_only_the_typed_error(
    data: bytes, cuts: list[int], want_requests: bool
) -> None:
    for decoder in (RtuDecoder(requests=want_requests), MbapDecoder()):
        _drain(decoder, _cut(data, cuts))
        assert decoder.pending < 264  # at most one unfinished frame is held


@given(
    st.lists(st.tuples(units, requests), max_size=15),
    st.lists(st.integers(0, 3000), max_size=40),
)
def test_rtu_requests_cut_into_random_chunks_decode_to_the_same_frames(
    sent: list[tuple[int, mf.Request]], cuts: list[int]
) -> None:
    data = b"".join(mf.encode_rtu(u, mf.encode_request(r)) for u, r in sent)
    frames, errors = _drain(RtuDecoder(requests=True), _cut(data, cuts))
    assert errors == 0
    assert [(f.unit, mf.decode_request(f.pdu)) for f in frames] == sent  # type: ignore[attr-defined]


@given(
    st.lists(st.tuples(units, responses), max_size=15),
    st.lists(st.integers(0, 3000), max_size=40),
)
def test_rtu_responses_cut_into_random_chunks_decode_to_the_same_frames(
    sent: list[tuple[int, mf.Response]], cuts: list[int]
) -> None:
    data = b"".join(mf.encode_rtu(u, mf.encode_response(r)) for u, r in sent)
    frames, errors = _drain(RtuDecoder(requests=False), _cut(data, cuts))
    assert errors == 0
    assert [(f.unit, mf.decode_response(f.pdu)) for f in frames] == sent  # type: ignore[attr-defined]


@given(
    st.lists(st.tuples(u16, units, requests.map(mf.encode_request)), max_size=15),
    st.lists(st.integers(0, 3000), max_size=40),
)
def test_mbap_stream_cut_into_random_chunks_decodes_to_the_same_frames(
    sent: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    data = b"".join(mf.encode_mbap(*frame) for frame in sent)
    frames, errors = _drain(MbapDecoder(), _cut(data, cuts))
    assert errors == 0
    assert frames == [mf.MbapFrame(*frame) for frame in sent]


@given(st.binary(min_size=1, max_size=40), units, requests)
def test_rtu_decoder_hunts_past_garbage_to_the_next_good_frame(
    junk: bytes, unit: int, request: mf.Request
) -> None:
    good = mf.encode_rtu(unit, mf.encode_request(request))
    decoder = RtuDecoder(requests=True)
    frames, _ = _drain(decoder, [junk + good])
    # Garbage can claim a frame longer than the bytes that follow; the frame gap after the good
    # frame (flush) lets the decoder hunt on instead of waiting for bytes that never come.
    frames += decoder.flush()[0]
    assert decoder.pending == 0
    # Garbage may by chance contain a frame whose CRC holds; the good frame still comes out last.
    assert frames, "the good frame was lost"
    last = frames[-1]
    assert (last.unit, mf.decode_request(last.pdu)) == (unit, request)  # type: ignore[attr-defined]


def test_bad_crc_is_an_error_then_the_next_frame_decodes() -> None:
    good = mf.encode_rtu(1, mf.encode_request(ReadRequest(Function.READ_COILS, 0, 8)))
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    frames, errors = _drain(RtuDecoder(requests=True), [bytes(bad) + good])
    assert errors >= 1
    assert [f.unit for f in frames] == [1]  # type: ignore[attr-defined]
