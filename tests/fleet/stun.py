"""A small STUN/TURN message codec for the fleet test (RFC 8489, RFC 8656), standard library only.

Written for tests/fleet/turn_agent.py: it builds requests with USERNAME, REALM, NONCE,
MESSAGE-INTEGRITY (HMAC-SHA1 over the MD5 long-term key) and FINGERPRINT, and parses answers:
XOR-MAPPED/XOR-RELAYED/XOR-PEER-ADDRESS, ERROR-CODE, NONCE, REALM, LIFETIME, SOFTWARE and
ALTERNATE-SERVER (plain address encoding, RFC 8489 §14.15). It also frames ChannelData.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import os
import struct

MAGIC = 0x2112A442
HEADER = struct.Struct("!HHI12s")

# Methods (RFC 8489 §18.2, RFC 8656 §17).
BINDING = 0x001
ALLOCATE = 0x003
REFRESH = 0x004
SEND = 0x006
DATA = 0x007
CREATE_PERMISSION = 0x008
CHANNEL_BIND = 0x009

# Classes.
REQUEST = 0x000
INDICATION = 0x010
SUCCESS = 0x100
ERROR = 0x110

# Attributes.
MAPPED_ADDRESS = 0x0001
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
CHANNEL_NUMBER = 0x000C
LIFETIME = 0x000D
XOR_PEER_ADDRESS = 0x0012
DATA_ATTR = 0x0013
REALM = 0x0014
NONCE = 0x0015
XOR_RELAYED_ADDRESS = 0x0016
REQUESTED_TRANSPORT = 0x0019
MESSAGE_INTEGRITY_SHA256 = 0x001C
XOR_MAPPED_ADDRESS = 0x0020
ALTERNATE_DOMAIN = 0x8003
SOFTWARE = 0x8022
ALTERNATE_SERVER = 0x8023
FINGERPRINT = 0x8028

FINGERPRINT_XOR = 0x5354554E
UDP = 17


def message_type(method: int, cls: int) -> int:
    """The 14-bit type: method bits M0-M11 interleaved with class bits C0 and C1."""
    return ((method & 0x0F80) << 2) | ((method & 0x0070) << 1) | (method & 0x000F) | cls


def split_type(mtype: int) -> tuple[int, int]:
    method = (mtype & 0x000F) | ((mtype & 0x00E0) >> 1) | ((mtype & 0x3E00) >> 2)
    return method, mtype & 0x0110


def long_term_key(username: str, realm: str, password: str) -> bytes:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).digest()


def _pad(n: int) -> int:
    return (4 - n % 4) % 4


def encode_xor_address(ip: str, port: int, txid: bytes) -> bytes:
    addr = ipaddress.ip_address(ip)
    xport = port ^ (MAGIC >> 16)
    if addr.version == 4:
        xaddr = int(addr) ^ MAGIC
        return struct.pack("!BBHI", 0, 1, xport, xaddr)
    key = struct.pack("!I", MAGIC) + txid
    raw = bytes(a ^ b for a, b in zip(addr.packed, key))
    return struct.pack("!BBH", 0, 2, xport) + raw


def decode_xor_address(value: bytes, txid: bytes) -> tuple[str, int]:
    family, xport = struct.unpack_from("!xBH", value)
    port = xport ^ (MAGIC >> 16)
    if family == 1:
        (xaddr,) = struct.unpack_from("!I", value, 4)
        return str(ipaddress.IPv4Address(xaddr ^ MAGIC)), port
    key = struct.pack("!I", MAGIC) + txid
    raw = bytes(a ^ b for a, b in zip(value[4:20], key))
    return str(ipaddress.IPv6Address(raw)), port


def decode_plain_address(value: bytes) -> tuple[str, int]:
    """MAPPED-ADDRESS / ALTERNATE-SERVER encoding: no XOR (RFC 8489 §14.1, §14.15)."""
    family, port = struct.unpack_from("!xBH", value)
    if family == 1:
        return str(ipaddress.IPv4Address(value[4:8])), port
    if family == 2:
        return str(ipaddress.IPv6Address(value[4:20])), port
    raise ValueError(f"unknown address family {family}")


class Message:
    """A parsed or to-be-built STUN message. attrs is a list of (type, value bytes)."""

    def __init__(self, method: int, cls: int, txid: bytes | None = None):
        self.method = method
        self.cls = cls
        self.txid = txid if txid is not None else os.urandom(12)
        self.attrs: list[tuple[int, bytes]] = []
        self.raw = b""
        self.integrity_offset = -1  # where MESSAGE-INTEGRITY starts in raw (parsed messages)

    # ---- building
    def add(self, atype: int, value: bytes) -> "Message":
        self.attrs.append((atype, value))
        return self

    def add_str(self, atype: int, text: str) -> "Message":
        return self.add(atype, text.encode())

    def add_u32(self, atype: int, number: int) -> "Message":
        return self.add(atype, struct.pack("!I", number))

    def encode(self, key: bytes | None = None, fingerprint: bool = True) -> bytes:
        body = b""
        for atype, value in self.attrs:
            body += struct.pack("!HH", atype, len(value)) + value + b"\0" * _pad(len(value))
        mtype = message_type(self.method, self.cls)
        if key is not None:
            head = HEADER.pack(mtype, len(body) + 24, MAGIC, self.txid)
            mac = hmac.new(key, head + body, hashlib.sha1).digest()
            body += struct.pack("!HH", MESSAGE_INTEGRITY, 20) + mac
        if fingerprint:
            head = HEADER.pack(mtype, len(body) + 8, MAGIC, self.txid)
            crc = (binascii.crc32(head + body) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
            body += struct.pack("!HHI", FINGERPRINT, 4, crc)
        return HEADER.pack(mtype, len(body), MAGIC, self.txid) + body

    # ---- reading
    def get(self, atype: int) -> bytes | None:
        for t, v in self.attrs:
            if t == atype:
                return v
        return None

    def get_all(self, atype: int) -> list[bytes]:
        return [v for t, v in self.attrs if t == atype]

    def error(self) -> tuple[int, str] | None:
        v = self.get(ERROR_CODE)
        if v is None or len(v) < 4:
            return None
        return (v[2] & 0x7) * 100 + v[3], v[4:].decode(errors="replace")

    def code(self) -> int:
        """200 for a success answer, the ERROR-CODE for an error answer."""
        if self.cls == SUCCESS:
            return 200
        err = self.error()
        return err[0] if err else 0

    def text(self, atype: int) -> str | None:
        v = self.get(atype)
        return v.decode(errors="replace") if v is not None else None

    def xor_address(self, atype: int) -> tuple[str, int] | None:
        v = self.get(atype)
        return decode_xor_address(v, self.txid) if v is not None else None

    def u32(self, atype: int) -> int | None:
        v = self.get(atype)
        return struct.unpack("!I", v[:4])[0] if v is not None and len(v) >= 4 else None

    def check_integrity(self, key: bytes) -> bool:
        """RFC 8489 §14.5: HMAC-SHA1 over the message up to MESSAGE-INTEGRITY, with the header's
        length counting up to the end of that attribute."""
        off = self.integrity_offset
        if off < 0:
            return False
        head = bytearray(self.raw[:20])
        struct.pack_into("!H", head, 2, off - 20 + 24)
        mac = hmac.new(key, bytes(head) + self.raw[20:off], hashlib.sha1).digest()
        return hmac.compare_digest(mac, self.raw[off + 4:off + 24])

    def check_fingerprint(self) -> bool | None:
        """None when there is no FINGERPRINT; else whether it matches."""
        raw = self.raw
        if len(raw) < 28:
            return None
        atype, alen = struct.unpack_from("!HH", raw, len(raw) - 8)
        if atype != FINGERPRINT or alen != 4:
            return None
        (crc,) = struct.unpack_from("!I", raw, len(raw) - 4)
        return (binascii.crc32(raw[:-8]) ^ FINGERPRINT_XOR) & 0xFFFFFFFF == crc


def is_stun(data: bytes) -> bool:
    return len(data) >= 20 and data[0] < 0x40 and struct.unpack_from("!I", data, 4)[0] == MAGIC


def parse(data: bytes) -> Message:
    if len(data) < 20:
        raise ValueError("shorter than a STUN header")
    mtype, length, magic, txid = HEADER.unpack_from(data)
    if magic != MAGIC or mtype & 0xC000:
        raise ValueError("not a STUN message")
    if 20 + length > len(data) or length % 4:
        raise ValueError("bad STUN length")
    method, cls = split_type(mtype)
    msg = Message(method, cls, txid)
    msg.raw = data[: 20 + length]
    pos = 20
    while pos + 4 <= 20 + length:
        atype, alen = struct.unpack_from("!HH", data, pos)
        value = data[pos + 4: pos + 4 + alen]
        if len(value) != alen:
            raise ValueError("attribute runs past the message")
        if atype == MESSAGE_INTEGRITY and msg.integrity_offset < 0:
            msg.integrity_offset = pos
        msg.attrs.append((atype, value))
        pos += 4 + alen + _pad(alen)
    return msg


def channel_data(channel: int, payload: bytes) -> bytes:
    return struct.pack("!HH", channel, len(payload)) + payload + b"\0" * _pad(len(payload))


def parse_channel_data(data: bytes) -> tuple[int, bytes] | None:
    if len(data) < 4 or not 0x40 <= data[0] <= 0x4F:
        return None
    channel, length = struct.unpack_from("!HH", data)
    if 4 + length > len(data):
        return None
    return channel, data[4: 4 + length]
