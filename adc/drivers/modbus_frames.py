"""Modbus frames in plain bytes: PDUs, RTU (CRC-16) and TCP (MBAP) framing, streaming decoders.

Pure byte work, no I/O. The emulators in `adc/sim/` serve requests with it (pymodbus's server cannot
stay silent for an unknown device id without a traceback, cannot inject bad CRCs, and cannot pace
bytes at a baud rate), the bench counts bytes with it, and tests build raw frames with it to check
the driver's client against. The driver's own client goes through pymodbus (`modbus_client.py`), so
an encoder bug here cannot hide a matching decoder bug there; mbpoll checks the emulator side.

Only the functions a cabinet uses are understood: 1-4 (reads), 5, 6 (single writes), 15, 16
(multiple writes). Over RTU a frame's end is found from its function code and byte count, not from
line silence, because USB adapters deliver bytes in ~16 ms batches; a bad CRC drops one byte and
hunts on (RTU has no start byte). Over TCP the MBAP length field delimits frames.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

MAX_READ_BITS = 2000
MAX_READ_REGISTERS = 125
MAX_WRITE_COILS = 1968
MAX_WRITE_REGISTERS = 123
MAX_PDU = 253


class Function(IntEnum):
    READ_COILS = 1
    READ_DISCRETE_INPUTS = 2
    READ_HOLDING_REGISTERS = 3
    READ_INPUT_REGISTERS = 4
    WRITE_COIL = 5
    WRITE_REGISTER = 6
    WRITE_COILS = 15
    WRITE_REGISTERS = 16


BIT_READS = (Function.READ_COILS, Function.READ_DISCRETE_INPUTS)
REGISTER_READS = (Function.READ_HOLDING_REGISTERS, Function.READ_INPUT_REGISTERS)


class ExceptionCode(IntEnum):
    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_ADDRESS = 0x02
    ILLEGAL_VALUE = 0x03
    DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    BUSY = 0x06
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_NO_RESPONSE = 0x0B


class ModbusFrameError(ValueError):
    """Bytes that are not a valid Modbus frame or PDU.

    `exception_code` is set when the frame itself arrived intact but asks for something invalid, so
    a server answers with that exception instead of staying silent.
    """

    def __init__(self, message: str, exception_code: ExceptionCode | None = None) -> None:
        super().__init__(message)
        self.exception_code = exception_code


# ------------------------------------------------------------------------------------------ PDUs
@dataclass(frozen=True)
class ReadRequest:
    function: Function  # 1-4
    address: int
    count: int


@dataclass(frozen=True)
class WriteSingleRequest:
    function: Function  # 5 (value 0 or 1) or 6 (value 0-65535)
    address: int
    value: int


@dataclass(frozen=True)
class WriteMultipleRequest:
    function: Function  # 15 (values 0/1) or 16 (values 0-65535)
    address: int
    values: tuple[int, ...]


Request = ReadRequest | WriteSingleRequest | WriteMultipleRequest


@dataclass(frozen=True)
class BitsResponse:
    """Answer to function 1 or 2. On the wire bits are packed, so a decoded answer holds a multiple
    of 8 bits; the reader knows how many it asked for."""

    function: Function
    bits: tuple[bool, ...]


@dataclass(frozen=True)
class RegistersResponse:
    function: Function
    registers: tuple[int, ...]


@dataclass(frozen=True)
class WriteResponse:
    """Echo of a write: for 5 and 6 the value written (coil as 0/1), for 15 and 16 the count."""

    function: Function
    address: int
    value: int


@dataclass(frozen=True)
class ExceptionResponse:
    function: int  # the function code asked for (without the 0x80 bit)
    code: int


Response = BitsResponse | RegistersResponse | WriteResponse | ExceptionResponse


def pack_bits(bits: tuple[bool, ...] | list[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def unpack_bits(data: bytes) -> tuple[bool, ...]:
    return tuple(bool(byte >> i & 1) for byte in data for i in range(8))


def _check_span(address: int, count: int) -> None:
    if address + count > 65536:
        raise ModbusFrameError(
            f"address {address} + count {count} runs past 65535", ExceptionCode.ILLEGAL_ADDRESS
        )


def encode_request(request: Request) -> bytes:
    """PDU bytes (function code first) of a request."""
    fc = request.function
    if isinstance(request, ReadRequest):
        return struct.pack(">BHH", fc, request.address, request.count)
    if isinstance(request, WriteSingleRequest):
        value = (0xFF00 if request.value else 0) if fc == Function.WRITE_COIL else request.value
        return struct.pack(">BHH", fc, request.address, value)
    if fc == Function.WRITE_COILS:
        data = pack_bits([bool(v) for v in request.values])
    else:
        data = b"".join(struct.pack(">H", v) for v in request.values)
    return struct.pack(">BHHB", fc, request.address, len(request.values), len(data)) + data


def decode_request(pdu: bytes) -> Request:
    """Parse a request PDU; raises ModbusFrameError (with the exception a server should answer)."""
    if not pdu:
        raise ModbusFrameError("empty PDU")
    fc = pdu[0]
    try:
        function = Function(fc)
    except ValueError:
        raise ModbusFrameError(
            f"function 0x{fc:02x} is not supported", ExceptionCode.ILLEGAL_FUNCTION
        ) from None
    if function <= Function.WRITE_REGISTER:
        if len(pdu) != 5:
            raise ModbusFrameError(
                f"function {fc} PDU must be 5 bytes, got {len(pdu)}", ExceptionCode.ILLEGAL_VALUE
            )
        _, address, value = struct.unpack(">BHH", pdu)
        if function in BIT_READS or function in REGISTER_READS:
            limit = MAX_READ_BITS if function in BIT_READS else MAX_READ_REGISTERS
            if not 1 <= value <= limit:
                raise ModbusFrameError(
                    f"read count {value} outside 1-{limit}", ExceptionCode.ILLEGAL_VALUE
                )
            _check_span(address, value)
            return ReadRequest(function, address, value)
        if function == Function.WRITE_COIL:
            if value not in (0, 0xFF00):
                raise ModbusFrameError(
                    f"coil value 0x{value:04x} is neither 0xFF00 nor 0x0000",
                    ExceptionCode.ILLEGAL_VALUE,
                )
            return WriteSingleRequest(function, address, 1 if value else 0)
        return WriteSingleRequest(function, address, value)
    if len(pdu) < 6:
        raise ModbusFrameError(f"function {fc} PDU too short", ExceptionCode.ILLEGAL_VALUE)
    _, address, count, nbytes = struct.unpack(">BHHB", pdu[:6])
    data = pdu[6:]
    if function == Function.WRITE_COILS:
        limit, expected = MAX_WRITE_COILS, (count + 7) // 8
    else:
        limit, expected = MAX_WRITE_REGISTERS, 2 * count
    if not 1 <= count <= limit or nbytes != expected or len(data) != nbytes:
        raise ModbusFrameError(
            f"function {fc}: count {count}, byte count {nbytes}, {len(data)} data bytes disagree",
            ExceptionCode.ILLEGAL_VALUE,
        )
    _check_span(address, count)
    if function == Function.WRITE_COILS:
        values = tuple(int(b) for b in unpack_bits(data)[:count])
    else:
        values = struct.unpack(f">{count}H", data)
    return WriteMultipleRequest(function, address, values)


def encode_response(response: Response) -> bytes:
    """PDU bytes of a response."""
    if isinstance(response, ExceptionResponse):
        return bytes([response.function | 0x80, response.code])
    if isinstance(response, BitsResponse):
        data = pack_bits(response.bits)
        return bytes([response.function, len(data)]) + data
    if isinstance(response, RegistersResponse):
        data = b"".join(struct.pack(">H", r) for r in response.registers)
        return bytes([response.function, len(data)]) + data
    value = response.value
    if response.function == Function.WRITE_COIL:
        value = 0xFF00 if value else 0
    return struct.pack(">BHH", response.function, response.address, value)


def decode_response(pdu: bytes) -> Response:
    """Parse a response PDU; raises ModbusFrameError."""
    if not pdu:
        raise ModbusFrameError("empty PDU")
    fc = pdu[0]
    if fc & 0x80:
        if len(pdu) != 2:
            raise ModbusFrameError(f"exception PDU must be 2 bytes, got {len(pdu)}")
        return ExceptionResponse(fc & 0x7F, pdu[1])
    try:
        function = Function(fc)
    except ValueError:
        raise ModbusFrameError(f"function 0x{fc:02x} is not supported") from None
    if function in BIT_READS or function in REGISTER_READS:
        if len(pdu) < 2 or len(pdu) != 2 + pdu[1]:
            raise ModbusFrameError(f"byte count disagrees with PDU length {len(pdu)}")
        data = pdu[2:]
        if function in BIT_READS:
            return BitsResponse(function, unpack_bits(data))
        if len(data) % 2:
            raise ModbusFrameError("odd byte count in a register response")
        return RegistersResponse(function, struct.unpack(f">{len(data) // 2}H", data))
    if len(pdu) != 5:
        raise ModbusFrameError(f"write echo must be 5 bytes, got {len(pdu)}")
    _, address, value = struct.unpack(">BHH", pdu)
    if function == Function.WRITE_COIL:
        if value not in (0, 0xFF00):
            raise ModbusFrameError(f"coil echo value 0x{value:04x}")
        value = 1 if value else 0
    return WriteResponse(function, address, value)


# ------------------------------------------------------------------------------------------- RTU
def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """Modbus CRC-16 (poly 0xA001 reflected, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def encode_rtu(unit: int, pdu: bytes) -> bytes:
    """RTU ADU: unit id, PDU, CRC low byte then high byte."""
    frame = bytes([unit]) + pdu
    return frame + struct.pack("<H", crc16(frame))


def rtu_request_length(head: bytes) -> int | None:
    """Length of the RTU request starting at `head`, None if more bytes are needed to tell.

    Raises ModbusFrameError for a function code whose length cannot be known.
    """
    if len(head) < 2:
        return None
    fc = head[1]
    if 1 <= fc <= 6:
        return 8
    if fc in (15, 16):
        return None if len(head) < 7 else 9 + head[6]
    raise ModbusFrameError(f"unknown request function 0x{fc:02x}")


def rtu_response_length(head: bytes) -> int | None:
    """Length of the RTU response starting at `head`, None if more bytes are needed to tell."""
    if len(head) < 2:
        return None
    fc = head[1]
    if fc & 0x80 and (fc & 0x7F) in Function.__members__.values():
        return 5
    if fc in (1, 2, 3, 4):
        return None if len(head) < 3 else 5 + head[2]
    if fc in (5, 6, 15, 16):
        return 8
    raise ModbusFrameError(f"unknown response function 0x{fc:02x}")


@dataclass(frozen=True)
class RtuFrame:
    unit: int
    pdu: bytes


class RtuDecoder:
    """Finds RTU frames in a byte stream cut anywhere; requests (server side) or responses.

    `next_frame()` returns a frame, None when more bytes are needed, or raises ModbusFrameError after
    dropping one byte (RTU has no start byte, so it hunts byte by byte for a frame whose CRC holds).
    The result depends only on the bytes, not on the chunking.
    """

    def __init__(self, *, requests: bool) -> None:
        self._length = rtu_request_length if requests else rtu_response_length
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def reset(self) -> None:
        self._buf.clear()

    def next_frame(self) -> RtuFrame | None:
        buf = self._buf
        try:
            length = self._length(bytes(buf[:7]))
        except ModbusFrameError:
            del buf[:1]
            raise
        if length is None or len(buf) < length:
            return None
        frame = bytes(buf[:length])
        (crc,) = struct.unpack("<H", frame[-2:])
        if crc != crc16(frame[:-2]):
            del buf[:1]
            raise ModbusFrameError(f"bad CRC in {frame[:12].hex(' ')}")
        del buf[:length]
        return RtuFrame(frame[0], frame[1:-2])

    def flush(self) -> tuple[list[RtuFrame], int]:
        """The line fell silent (a frame gap): nothing buffered will be completed, so hunt through
        the buffer for whole frames and drop the rest. Returns the frames and how many candidate
        starts were rejected. Without this a garbage byte that claims a long frame would hold the
        next good frame back until more bytes arrive."""
        frames: list[RtuFrame] = []
        rejected = 0
        while self._buf:
            try:
                frame = self.next_frame()
            except ModbusFrameError:
                rejected += 1
                continue
            if frame is None:
                del self._buf[:1]
                rejected += 1
                continue
            frames.append(frame)
        return frames, rejected


# ------------------------------------------------------------------------------------------- TCP
@dataclass(frozen=True)
class MbapFrame:
    transaction: int
    unit: int
    pdu: bytes


def encode_mbap(transaction: int, unit: int, pdu: bytes) -> bytes:
    """Modbus TCP ADU: transaction id, protocol 0, length (unit + PDU), unit id, PDU."""
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu


class MbapDecoder:
    """Finds Modbus TCP frames in a stream. A header with a protocol id other than 0 or an
    impossible length raises ModbusFrameError (after dropping one byte); a server closes the
    connection then, as real gateways do."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> MbapFrame | None:
        buf = self._buf
        if len(buf) < 7:
            return None
        transaction, protocol, length, unit = struct.unpack(">HHHB", bytes(buf[:7]))
        if protocol != 0 or not 2 <= length <= MAX_PDU + 1:
            header = bytes(buf[:7])
            del buf[:1]
            raise ModbusFrameError(f"bad MBAP header {header.hex(' ')}")
        total = 6 + length
        if len(buf) < total:
            return None
        pdu = bytes(buf[7:total])
        del buf[:total]
        return MbapFrame(transaction, unit, pdu)


# --------------------------------------------------------------------------------- wire sizes
def rtu_read_sizes(function: Function, count: int) -> tuple[int, int]:
    """(request bytes, response bytes) of an RTU read of `count` bits or registers."""
    data = (count + 7) // 8 if function in BIT_READS else 2 * count
    return 8, 5 + data
