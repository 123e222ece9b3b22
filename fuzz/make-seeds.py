#!/usr/bin/env python3
"""Writes the seed corpora for the stun_message, stream_framer, request_path, client_hello and
proxy_header fuzz targets.

Run from anywhere: python3 fuzz/make-seeds.py. Seeds are the RFC 5769 vectors plus one
message of each TURN flavour tern handles, so the fuzzer starts from deep inside the parser.
"""
import binascii
import hashlib
import hmac
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
COOKIE = 0x2112A442
TXID = bytes(range(1, 13))


def hexbytes(text):
    return bytes.fromhex("".join(text.split()))


RFC5769 = {
    "rfc5769-2.1-request": hexbytes("""
        00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
        00 24 00 04 6e 00 01 ff 80 29 00 08 93 2f f9 b1 51 26 3b 36
        00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
        00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
        80 28 00 04 e5 7a 3b cf"""),
    "rfc5769-2.2-ipv4-response": hexbytes("""
        01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 08 00 01 a1 47 e1 12 a6 43
        00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
        80 28 00 04 c0 7d 4c 96"""),
    "rfc5769-2.3-ipv6-response": hexbytes("""
        01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
        00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
        80 28 00 04 c8 fb 0b 4c"""),
    "rfc5769-2.4-long-term-request": hexbytes("""
        00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
        00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
        00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
        00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
        00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66"""),
}


def message_type(method, cls):
    return ((method & 0x000F) | ((cls & 1) << 4) | ((method & 0x0070) << 1) |
            ((cls & 2) << 7) | ((method & 0x0F80) << 2))


class Message:
    def __init__(self, method, cls, txid=TXID):
        self.type = message_type(method, cls)
        self.txid = txid
        self.body = b""

    def header(self, length):
        return struct.pack("!HHI", self.type, length, COOKIE) + self.txid

    def add(self, attr_type, value):
        self.body += struct.pack("!HH", attr_type, len(value)) + value
        self.body += b"\0" * (-len(value) % 4)
        return self

    def xor_address(self, attr_type, ip, port):
        mask = struct.pack("!I", COOKIE) + self.txid
        raw = bytes(a ^ b for a, b in zip(ip, mask))
        family = 1 if len(ip) == 4 else 2
        return self.add(attr_type, struct.pack("!BBH", 0, family, port ^ (COOKIE >> 16)) + raw)

    def address(self, attr_type, family, port, raw):
        """An address attribute with any family byte, the value left as given (not XORed)."""
        return self.add(attr_type, struct.pack("!BBH", 0, family, port) + raw)

    def integrity(self, key):
        mac = hmac.new(key, self.header(len(self.body) + 24) + self.body, hashlib.sha1)
        return self.add(0x0008, mac.digest())

    def integrity_sha256(self, key):
        mac = hmac.new(key, self.header(len(self.body) + 36) + self.body, hashlib.sha256)
        return self.add(0x001C, mac.digest())

    def fingerprint(self):
        crc = binascii.crc32(self.header(len(self.body) + 8) + self.body) ^ 0x5354554E
        return self.add(0x8028, struct.pack("!I", crc))

    def bytes(self):
        return self.header(len(self.body)) + self.body


def channel_data(channel, payload, pad):
    out = struct.pack("!HH", channel, len(payload)) + payload
    return out + b"\0" * (-len(payload) % 4) if pad else out


def messages():
    key = hashlib.md5(b"alice:tern:secret").digest()
    peer4 = bytes([198, 51, 100, 7])
    peer6 = bytes.fromhex("20010db8000000000000000000000042")
    yield "allocate-request", (Message(0x003, 0).add(0x0019, b"\x11\0\0\0")
                               .add(0x001A, b"").add(0x0017, b"\x02\0\0\0")
                               .add(0x0018, b"\x80").fingerprint().bytes())
    yield "allocate-authenticated", (Message(0x003, 0).add(0x0019, b"\x11\0\0\0")
                                     .add(0x0006, b"alice").add(0x0014, b"tern")
                                     .add(0x0015, b"nonce-123").add(0x001D, b"\0\x02\0\0")
                                     .integrity(key).integrity_sha256(key).fingerprint().bytes())
    yield "allocate-success", (Message(0x003, 2).xor_address(0x0016, peer4, 50000)
                               .xor_address(0x0016, peer6, 50002)
                               .xor_address(0x0020, peer4, 40000).add(0x000D, b"\0\0\x02\x58")
                               .add(0x0022, bytes(range(8))).integrity(key).bytes())
    yield "allocate-401", (Message(0x003, 3).add(0x0009, b"\0\0\x04\x01Unauthorized")
                           .add(0x0014, b"tern").add(0x0015, b"nonce")
                           .add(0x8002, b"\0\x02\0\0\0\x01\0\0").add(0x8022, b"ternd")
                           .fingerprint().bytes())
    yield "allocate-420", (Message(0x003, 3).add(0x0009, b"\0\0\x04\x14Unknown Attribute")
                           .add(0x000A, b"\0\x50\x7f\xff").bytes())
    yield "address-error", (Message(0x003, 3).add(0x8001, b"\x02\0\x04\x28no v6").bytes())
    yield "refresh-mobility", (Message(0x004, 0).add(0x000D, b"\0\0\0\0")
                               .add(0x8030, b"").bytes())
    yield "create-permission", (Message(0x008, 0).xor_address(0x0012, peer4, 0)
                                .xor_address(0x0012, peer6, 0).integrity(key).bytes())
    yield "channel-bind", (Message(0x009, 0).add(0x000C, b"\x40\x01\0\0")
                           .xor_address(0x0012, peer4, 9999).integrity(key).fingerprint()
                           .bytes())
    yield "send-indication", (Message(0x006, 1).xor_address(0x0012, peer6, 7)
                              .add(0x0013, b"hello, peer").add(0x001A, b"").bytes())
    yield "data-indication", (Message(0x007, 1).xor_address(0x0012, peer4, 7)
                              .add(0x8004, b"\0\0\x03\x01\0\0\x05\xdc")
                              .add(0x0013, b"").bytes())
    yield "connect-tcp", (Message(0x00A, 0).xor_address(0x0012, peer4, 80).bytes())
    yield "connection-bind", (Message(0x00B, 0).add(0x002A, b"\xde\xad\xbe\xef").bytes())
    yield "binding-ice", (Message(0x001, 0).add(0x0006, b"abcd:efgh")
                          .add(0x0024, b"\x6e\0\x01\xff").add(0x0025, b"")
                          .add(0x802A, bytes(range(8))).integrity(b"icepwd").fingerprint()
                          .bytes())
    yield "binding-5780", (Message(0x001, 0).add(0x0003, b"\0\0\0\x06").add(0x0027, b"\x0d\x96\0\0")
                           .add(0x0026, b"\0" * 12).add(0x001E, bytes(32)).bytes())
    yield "binding-5780-response", (Message(0x001, 2).add(0x0001, b"\0\x01\x0d\x96" + peer4)
                                    .add(0x802B, b"\0\x02\x0d\x96" + peer6)
                                    .add(0x802C, b"\0\x01\x0d\x97" + peer4)
                                    .add(0x8023, b"\0\x01\x0d\x96" + peer4)
                                    .add(0x8003, b"turn.example.org").bytes())
    yield "ignored-after-integrity", (Message(0x003, 0).integrity(key)
                                      .add(0x0006, b"after").fingerprint().bytes())
    yield "unknown-required", (Message(0x001, 0).add(0x0050, b"x").add(0xC001, b"y").bytes())
    yield from structure_cases(key, peer4, peer6)


def structure_cases(key, peer4, peer6):
    """Duplicate peers, attributes after the integrity attributes, LIFETIME extremes and unknown
    address families (fuzz/stun_message.cpp checks what the parser must do with each)."""
    other4 = bytes([198, 51, 100, 8])
    yield "create-permission-duplicate-peers", (
        Message(0x008, 0).xor_address(0x0012, peer4, 0).xor_address(0x0012, peer6, 0)
        .xor_address(0x0012, peer4, 0).xor_address(0x0012, other4, 0)
        .integrity(key).fingerprint().bytes())
    yield "create-permission-same-peer-twice", (
        Message(0x008, 0).xor_address(0x0012, peer4, 0).xor_address(0x0012, peer4, 0)
        .integrity(key).bytes())
    yield "send-indication-two-peers", (
        Message(0x006, 1).xor_address(0x0012, peer4, 7).xor_address(0x0012, peer6, 7)
        .add(0x0013, b"to whom?").bytes())
    # RFC 8489 §14.5/§14.6: after MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
    # count, after MESSAGE-INTEGRITY-SHA256 only FINGERPRINT.
    yield "after-integrity-second-integrity", (
        Message(0x008, 0).xor_address(0x0012, peer4, 0).integrity(key)
        .xor_address(0x0012, peer6, 0).add(0x000D, b"\0\0\0\0").add(0x0006, b"mallory")
        .integrity(b"another key").fingerprint().bytes())
    yield "after-integrity-sha256", (
        Message(0x004, 0).add(0x000D, b"\0\0\x02\x58").integrity_sha256(key)
        .add(0x000D, b"\0\0\0\0").integrity(key).integrity_sha256(b"x")
        .add(0x8022, b"late").fingerprint().bytes())
    yield "after-integrity-both", (
        Message(0x003, 0).add(0x0019, b"\x11\0\0\0").integrity(key)
        .add(0x0019, b"\x06\0\0\0").integrity_sha256(key)
        .add(0x0017, b"\x02\0\0\0").integrity(key).fingerprint().bytes())
    for method, name in ((0x003, "allocate"), (0x004, "refresh")):
        for value, label in ((0xFFFFFFFF, "max"), (0, "zero")):
            message = Message(method, 0)
            if method == 0x003:
                message.add(0x0019, b"\x11\0\0\0")
            yield f"{name}-lifetime-{label}", (
                message.add(0x000D, struct.pack("!I", value)).integrity(key).bytes())
    # Unknown families: 0x00, 0x03 and 0xFF in the address attributes (the parser must refuse
    # them), and in REQUESTED-/ADDITIONAL-ADDRESS-FAMILY (parsed; the allocation layer refuses).
    yield "xor-peer-address-unknown-family", (
        Message(0x008, 0).address(0x0012, 0x03, 0x2112, peer4).integrity(key).bytes())
    yield "xor-peer-address-unknown-family-v6-length", (
        Message(0x006, 1).address(0x0012, 0x00, 7, peer6).add(0x0013, b"x").bytes())
    yield "xor-mapped-address-unknown-family", (
        Message(0x001, 2).address(0x0020, 0xFF, 0xA147, peer4).bytes())
    yield "xor-relayed-address-unknown-family", (
        Message(0x003, 2).address(0x0016, 0x03, 0xA147, peer6).add(0x000D, b"\0\0\x02\x58")
        .bytes())
    yield "requested-address-family-unknown", (
        Message(0x003, 0).add(0x0019, b"\x11\0\0\0").add(0x0017, b"\x03\0\0\0")
        .integrity(key).bytes())
    yield "additional-address-family-unknown", (
        Message(0x003, 0).add(0x0019, b"\x11\0\0\0").add(0x8000, b"\x00\0\0\0")
        .integrity(key).bytes())
    yield "unknown-families-after-integrity", (
        Message(0x003, 0).add(0x0019, b"\x11\0\0\0").integrity(key)
        .address(0x0012, 0x03, 1, peer4).address(0x0020, 0x00, 2, peer6)
        .address(0x0016, 0xFF, 3, peer4).add(0x0017, b"\x07\0\0\0")
        .add(0x8000, b"\xff\0\0\0").fingerprint().bytes())


def main():
    stun_dir = HERE / "corpus" / "stun_message"
    framer_dir = HERE / "corpus" / "stream_framer"
    stun_dir.mkdir(parents=True, exist_ok=True)
    framer_dir.mkdir(parents=True, exist_ok=True)
    all_messages = dict(RFC5769)
    all_messages.update(messages())
    for name, data in all_messages.items():
        (stun_dir / name).write_bytes(data)
    (stun_dir / "channel-data").write_bytes(channel_data(0x4001, b"payload", False))
    (stun_dir / "channel-data-padded").write_bytes(channel_data(0x4FFF, b"abcde", True))

    # stream_framer input: read-size seed, cap index, then the stream.
    cd = [channel_data(0x4000 + i, bytes(range(i)), True) for i in range(6)]
    streams = {
        "mixed": all_messages["allocate-request"] + cd[5] + all_messages["channel-bind"] + cd[0],
        "channel-data-only": b"".join(cd),
        "stun-only": b"".join(list(all_messages.values())[:6]),
        "partial-tail": cd[3] + all_messages["allocate-success"][:30],
        "invalid-after-frame": cd[2] + b"\x80\x00\x00\x00",
        "bad-cookie": all_messages["allocate-request"][:4] + b"\x21\x12\xa4\x43",
        "oversized": b"\x00\x01\xff\xfc\x21\x12\xa4\x42" + TXID,
    }
    for index, (name, stream) in enumerate(streams.items()):
        (framer_dir / name).write_bytes(bytes([index * 37 + 1, index]) + stream)

    write_request_path_seeds()
    write_edge_seeds()


def step(op, payload):
    return struct.pack("!BH", op, len(payload)) + payload


def request_path_seeds():
    """Scripts for fuzz/request_path.cpp: op 2 (8 from client B) signs the message as alice."""
    peer4 = bytes([203, 0, 113, 5])
    peer6 = bytes.fromhex("20010db8000000000000000000000099")
    ALLOCATE, REFRESH, PERMISSION, BIND, SEND = 0x003, 0x004, 0x008, 0x009, 0x006

    def txid(n):
        return bytes([n] * 12)

    def request(method, n):
        return Message(method, 0, txid(n))

    allocate = request(ALLOCATE, 1).add(0x0019, b"\x11\0\0\0")
    permit = request(PERMISSION, 2).xor_address(0x0012, peer4, 7000)
    bind = request(BIND, 3).add(0x000C, b"\x40\x01\0\0").xor_address(0x0012, peer4, 7000)
    send = Message(SEND, 1, txid(4)).xor_address(0x0012, peer4, 7000).add(0x0013, b"hello")
    delete = request(REFRESH, 5).add(0x000D, b"\0\0\0\0")
    peer_datagram = bytes([0]) + peer4 + struct.pack("!H", 7000) + b"from the peer"
    udp_flow = b"".join([
        step(2, allocate.bytes()), step(2, permit.bytes()), step(2, bind.bytes()),
        step(0, channel_data(0x4001, b"to the peer", False)), step(0, send.bytes()),
        step(3, peer_datagram), step(4, b"\x05"), step(3, peer_datagram),
        step(2, delete.bytes()), step(2, delete.bytes())])
    dual = request(ALLOCATE, 6).add(0x0019, b"\x11\0\0\0").add(0x8000, b"\x02\0\0\0")
    permit6 = request(PERMISSION, 7).xor_address(0x0012, peer6, 9)
    tcp_flow = b"".join([
        step(8, dual.bytes()), step(8, permit6.bytes()),
        step(1, channel_data(0x4001, b"x", True)), step(5, b""), step(8, permit6.bytes())])
    even = request(ALLOCATE, 8).add(0x0019, b"\x11\0\0\0").add(0x0018, b"\x80\0\0\0")
    token = request(ALLOCATE, 9).add(0x0019, b"\x11\0\0\0").add(
        0x0022, b"\x01\x02\x03\x04\x05\x06\x07\x08")
    family = request(ALLOCATE, 10).add(0x0019, b"\x11\0\0\0").add(0x0017, b"\x02\0\0\0")
    quota = b"".join(step(2, request(ALLOCATE, 20 + i).add(0x0019, b"\x11\0\0\0").bytes())
                     for i in range(5))
    errors = b"".join([
        step(2, even.bytes()), step(8, token.bytes()), step(8, family.bytes()),
        step(2, request(ALLOCATE, 11).add(0x0019, b"\x06\0\0\0").bytes()),
        step(2, request(REFRESH, 12).add(0x0017, b"\x02\0\0\0").bytes()),
        step(4, b"\xff"), step(4, b"\xff"), quota])
    scripts = {"udp-flow": udp_flow, "tcp-dual-stack-flow": tcp_flow, "allocate-variants": errors}
    scripts.update(structure_scripts())
    return scripts


def raw_signed(method, flags, n, tlvs, client_b=False):
    """An op 2 step with (op / 6) & 2 set: request_path signs the raw TLVs as alice. flags & 0x0F
    TLVs go before the credentials, the rest after the integrity attribute; 0x10 SHA-256,
    0x20 a second MESSAGE-INTEGRITY, 0x40 USERHASH, 0x80 no FINGERPRINT."""
    op = 6 * (3 if client_b else 2) + 2
    return step(op, struct.pack("!HB", method, flags) + bytes([n] * 12) + tlvs)


def structure_scripts():
    """Scripts that reach the manager with the structure-aware cases: duplicate peers, attributes
    after the integrity attribute, LIFETIME 0 and 0xFFFFFFFF, unknown address families."""
    ALLOCATE, REFRESH, PERMISSION, BIND, SEND = 0x003, 0x004, 0x008, 0x009, 0x006
    peer4 = bytes([203, 0, 113, 5])
    other4 = bytes([203, 0, 113, 6])
    denied4 = bytes([10, 1, 2, 3])
    peer6 = bytes.fromhex("20010db8000000000000000000000099")

    def request(method, n):
        return Message(method, 0, bytes([n] * 12))

    def tlvs(method, n):
        """Lays out TLVs for raw_signed (IPv6 XOR-PEER-ADDRESS needs the transaction id)."""
        return request(method, n)

    def datagram(ip):
        return bytes([0]) + ip + struct.pack("!H", 7000) + b"from a peer"

    udp = b"\x11\0\0\0"

    duplicate_peers = b"".join([
        step(2, request(ALLOCATE, 31).add(0x0019, udp).bytes()),
        step(2, request(PERMISSION, 32).xor_address(0x0012, peer4, 7000)
             .xor_address(0x0012, other4, 7000).xor_address(0x0012, peer4, 7000).bytes()),
        step(2, request(PERMISSION, 33).xor_address(0x0012, peer4, 1)
             .xor_address(0x0012, peer4, 1).bytes()),
        step(2, request(PERMISSION, 34).xor_address(0x0012, peer4, 1)
             .xor_address(0x0012, denied4, 1).bytes()),
        step(2, request(PERMISSION, 35).xor_address(0x0012, peer4, 1)
             .xor_address(0x0012, peer6, 1).bytes()),
        step(0, Message(SEND, 1, bytes([36] * 12)).xor_address(0x0012, peer4, 7000)
             .xor_address(0x0012, other4, 7000).add(0x0013, b"two peers").bytes()),
        step(0, Message(SEND, 1, bytes([37] * 12)).xor_address(0x0012, other4, 7000)
             .xor_address(0x0012, other4, 7000).add(0x0013, b"same twice").bytes()),
        step(3, datagram(other4)), step(3, datagram(peer4)),
        step(2, request(BIND, 38).add(0x000C, b"\x40\x02\0\0")
             .xor_address(0x0012, other4, 7000).xor_address(0x0012, peer4, 7000).bytes()),
        step(0, channel_data(0x4002, b"bound?", False)),
    ])

    after_integrity = b"".join([
        # REQUESTED-TRANSPORT counts; LIFETIME and EVEN-PORT after MI do not; a second MI.
        raw_signed(ALLOCATE, 0x21, 41, tlvs(ALLOCATE, 41).add(0x0019, udp)
                   .add(0x000D, b"\xff\xff\xff\xff").add(0x0018, b"\x80").body),
        # SHA-256 with USERHASH: the second peer follows MI-SHA256 and gets no permission.
        raw_signed(PERMISSION, 0x51, 42, tlvs(PERMISSION, 42).xor_address(0x0012, peer4, 7000)
                   .xor_address(0x0012, other4, 7000).body),
        step(0, Message(SEND, 1, bytes([43] * 12)).xor_address(0x0012, other4, 7000)
             .add(0x0013, b"not permitted").bytes()),
        step(3, datagram(other4)), step(3, datagram(peer4)),
        # LIFETIME 0 only after the integrity attribute: a plain refresh, not a delete.
        raw_signed(REFRESH, 0x20, 44, tlvs(REFRESH, 44).add(0x000D, b"\0\0\0\0").body),
        # MI-SHA256 after MI is not ignored (§14.5), and does not verify: 401.
        raw_signed(PERMISSION, 0x01, 45, tlvs(PERMISSION, 45).xor_address(0x0012, peer4, 1)
                   .add(0x001C, bytes(32)).body),
        raw_signed(REFRESH, 0x8F, 46, tlvs(REFRESH, 46).add(0x000D, b"\0\0\x02\x58").body),
        raw_signed(REFRESH, 0x1F, 47, tlvs(REFRESH, 47).add(0x000D, b"\0\0\0\0").body),
    ])

    lifetimes = b"".join([
        step(2, request(ALLOCATE, 51).add(0x0019, udp).add(0x000D, b"\xff\xff\xff\xff").bytes()),
        step(2, request(REFRESH, 52).add(0x000D, b"\xff\xff\xff\xff").bytes()),
        step(4, b"\xff"),
        step(2, request(REFRESH, 53).add(0x000D, b"\0\0\0\0").bytes()),
        step(2, request(REFRESH, 54).add(0x000D, b"\0\0\0\0").bytes()),
        step(2, request(ALLOCATE, 55).add(0x0019, udp).add(0x000D, b"\0\0\0\0").bytes()),
        step(8, request(ALLOCATE, 56).add(0x0019, udp).add(0x000D, b"\xff\xff\xff\xff").bytes()),
        step(8, request(REFRESH, 57).add(0x000D, b"\xff\xff\xff\xfe").bytes()),
        step(4, b"\x80"), step(4, b"\x80"),
        step(8, request(REFRESH, 58).add(0x000D, b"\0\0\0\0").bytes()),
        step(2, request(REFRESH, 59).add(0x000D, b"\0\0\0\x01").bytes()),
    ])

    unknown_families = b"".join([
        raw_signed(ALLOCATE, 0x0F, 61, tlvs(ALLOCATE, 61).add(0x0019, udp)
                   .add(0x0017, b"\x03\0\0\0").body),
        raw_signed(ALLOCATE, 0x0F, 62, tlvs(ALLOCATE, 62).add(0x0019, udp)
                   .add(0x8000, b"\x00\0\0\0").body),
        raw_signed(ALLOCATE, 0x0F, 63, tlvs(ALLOCATE, 63).add(0x0019, udp)
                   .add(0x8000, b"\x03\0\0\0").body),
        # The same family after MESSAGE-INTEGRITY is ignored: an IPv4 allocation.
        raw_signed(ALLOCATE, 0x01, 64, tlvs(ALLOCATE, 64).add(0x0019, udp)
                   .add(0x0017, b"\xff\0\0\0").body),
        # Unknown families in address attributes: the codec refuses the request, no answer.
        raw_signed(PERMISSION, 0x0F, 65, tlvs(PERMISSION, 65).address(0x0012, 0x03, 1, peer4).body),
        raw_signed(PERMISSION, 0x0F, 66, tlvs(PERMISSION, 66).xor_address(0x0012, peer4, 1)
                   .address(0x0020, 0x00, 1, peer6).body),
        raw_signed(PERMISSION, 0x0F, 67, tlvs(PERMISSION, 67).xor_address(0x0012, peer4, 1)
                   .address(0x0016, 0xFF, 1, peer4).body),
        raw_signed(BIND, 0x0F, 68, tlvs(BIND, 68).add(0x000C, b"\x40\x03\0\0")
                   .address(0x0012, 0x02, 1, peer4).body),
        # After the integrity attribute they are ignored: a permission for peer4 only.
        raw_signed(PERMISSION, 0x01, 69, tlvs(PERMISSION, 69).xor_address(0x0012, peer4, 7000)
                   .address(0x0012, 0x00, 1, other4).address(0x0020, 0x03, 1, peer6).body),
        raw_signed(REFRESH, 0x0F, 70, tlvs(REFRESH, 70).add(0x0017, b"\x03\0\0\0").body),
        step(0, Message(SEND, 1, bytes([71] * 12)).address(0x0012, 0x03, 7000, peer4)
             .add(0x0013, b"x").bytes()),
        step(0, Message(SEND, 1, bytes([72] * 12)).xor_address(0x0012, peer4, 7000)
             .add(0x0013, b"y").bytes()),
        step(3, datagram(peer4)),
    ])
    return {"duplicate-peers": duplicate_peers, "after-integrity": after_integrity,
            "lifetime-extremes": lifetimes, "unknown-address-families": unknown_families}


def write_request_path_seeds():
    directory = HERE / "corpus" / "request_path"
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in request_path_seeds().items():
        (directory / name).write_bytes(data)


def tls_records(message, cuts=()):
    """A handshake message in TLS records (legacy version 0x0301), cut at the given offsets."""
    out, start = b"", 0
    for end in list(cuts) + [len(message)]:
        out += struct.pack("!BHH", 0x16, 0x0301, end - start) + message[start:end]
        start = end
    return out


def hello_message(extensions, with_block=True):
    """A TLS 1.2-shaped ClientHello: fixed random, no session id, two suites, null compression."""
    body = b"\x03\x03" + bytes(range(32)) + b"\x00" + b"\x00\x04\x13\x01\xc0\x2f" + b"\x01\x00"
    if with_block:
        block = b"".join(struct.pack("!HH", t, len(d)) + d for t, d in extensions)
        body += struct.pack("!H", len(block)) + block
    return struct.pack("!B", 1) + len(body).to_bytes(3, "big") + body


def sni(host):
    entry = b"\x00" + struct.pack("!H", len(host)) + host
    return (0, struct.pack("!H", len(entry)) + entry)


def alpn(*names):
    wire = b"".join(bytes([len(n)]) + n for n in names)
    return (16, struct.pack("!H", len(wire)) + wire)


def openssl_client_hellos():
    """Real ClientHellos from OpenSSL (Python's ssl over memory BIOs). Random and key shares
    change on every run, so existing files are kept rather than rewritten."""
    import ssl
    cases = {
        "openssl-sni-h2": ("www.example.com", ["h2", "http/1.1"], None),
        "openssl-turn-alpn": ("turn.example.com", ["stun.turn"], None),
        "openssl-no-sni": (None, [], None),
        "openssl-tls12": ("turn.example.net", ["stun.nat-discovery"], ssl.TLSVersion.TLSv1_2),
    }
    for name, (host, protocols, max_version) in cases.items():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if max_version:
            context.maximum_version = max_version
        if protocols:
            context.set_alpn_protocols(protocols)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = context.wrap_bio(incoming, outgoing, server_hostname=host)
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        yield name, outgoing.read()


def client_hello_seeds():
    """Hand-made hellos reaching each branch of ClientHelloReader, deterministic."""
    both = hello_message([sni(b"turn.example.com"), alpn(b"h2", b"stun.turn")])
    yield "two-records", tls_records(both, [40])
    yield "three-records-split-header", tls_records(both, [2, 5])
    yield "no-extensions", tls_records(hello_message([], with_block=False))
    yield "empty-extensions", tls_records(hello_message([]))
    yield "sni-only", tls_records(hello_message([sni(b"Www.Example.COM")]))
    yield "alpn-only", tls_records(hello_message([alpn(b"http/1.1")]))
    yield "invalid-sni", tls_records(hello_message([sni(b"bad_name..example.")]))
    yield "many-alpn", tls_records(hello_message([alpn(*[b"p%d" % i for i in range(20)])]))
    yield "duplicate-sni", tls_records(hello_message([sni(b"a.example"), sni(b"b.example")]))
    yield "trailing-record", tls_records(both) + b"\x14\x03\x03\x00\x01\x01"


def proxy_header_seeds():
    v2_signature = b"\r\n\r\n\x00\r\nQUIT\n"
    ipv4 = bytes([192, 0, 2, 1, 198, 51, 100, 7]) + struct.pack("!HH", 56394, 443)
    ipv6 = bytes.fromhex("20010db8000000000000000000000001" "20010db8000000000000000000000002")
    ipv6 += struct.pack("!HH", 5000, 443)
    tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x03\x00\x00\x00"
    yield "v1-tcp4", b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n"
    yield "v1-tcp6", b"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n"
    yield "v1-unknown", b"PROXY UNKNOWN\r\n"
    yield "v1-unknown-long", b"PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n"
    yield "v2-ipv4", v2_signature + b"\x21\x11" + struct.pack("!H", len(ipv4)) + ipv4
    yield "v2-ipv6-tlvs", (v2_signature + b"\x21\x21" + struct.pack("!H", len(ipv6 + tlvs)) +
                           ipv6 + tlvs)
    yield "v2-local", v2_signature + b"\x20\x00\x00\x00"
    yield "v2-then-tls", (v2_signature + b"\x21\x11" + struct.pack("!H", len(ipv4)) + ipv4 +
                          b"\x16\x03\x01\x00\x05")


def write_edge_seeds():
    hello_dir = HERE / "corpus" / "client_hello"
    proxy_dir = HERE / "corpus" / "proxy_header"
    hello_dir.mkdir(parents=True, exist_ok=True)
    proxy_dir.mkdir(parents=True, exist_ok=True)
    for name, data in openssl_client_hellos():
        if not (hello_dir / name).exists():
            (hello_dir / name).write_bytes(data)
    for name, data in client_hello_seeds():
        (hello_dir / name).write_bytes(data)
    for name, data in proxy_header_seeds():
        (proxy_dir / name).write_bytes(data)


if __name__ == "__main__":
    main()
