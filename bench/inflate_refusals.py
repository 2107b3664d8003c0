"""Why verify inflates with zlib, not libdeflate: a gzip member libdeflate
accepts and zlib refuses.

libdeflate inflates archiver's small records about twice as fast as zlib
(3.9 against 5.9-8.3 µs a member, measured in C over a 10,000-snapshot
archive), which would take about 10 µs off each small-page snapshot. But
verify may use another inflater only if it refuses everything zlib refuses
(a record one tool reads and another cannot is a verdict of its own), and
libdeflate (1.14, Debian bookworm) does not: it reads a dynamic block's
HLIT and HDIST as RFC 1951 encodes them (up to 288 literal/length and 32
distance codes) without refusing more than the 286 and 30 the RFC allows,
which zlib refuses ("too many length or distance symbols"). This script
builds such members -- one literal, 'a', behind 270 to 288 declared
literal/length codes -- and asks both.

    python bench/inflate_refusals.py

Needs libdeflate's shared library (Debian: libdeflate0); says so if absent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import zlib

ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]  # RFC 1951 3.2.7


class _Bits:
    """Fields written least significant bit first, as deflate packs them."""

    def __init__(self) -> None:
        self.acc = self.n = 0
        self.out = bytearray()

    def put(self, value: int, count: int) -> None:
        for i in range(count):
            self.acc |= ((value >> i) & 1) << self.n
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                self.acc = self.n = 0

    def bytes(self) -> bytes:
        return bytes(self.out) + (bytes([self.acc]) if self.n else b"")


def member(litlen_codes: int) -> bytes:
    """A gzip member holding 'a' in one dynamic block declaring ``litlen_codes`` codes."""
    b = _Bits()
    b.put(1, 1)  # BFINAL
    b.put(2, 2)  # dynamic Huffman
    b.put(litlen_codes - 257, 5)  # HLIT
    b.put(0, 5)  # HDIST: one distance code
    b.put(15, 4)  # HCLEN: all 19 code length codes
    for sym in ORDER:  # code length code: 1 and 18, one bit each ('0' and '1')
        b.put(1 if sym in (1, 18) else 0, 3)

    def zeros(n: int) -> None:
        while n:
            k = min(n, 138)
            b.put(1, 1)  # 18: a run of 11-138 zero lengths
            b.put(k - 11, 7)
            n -= k

    zeros(97)
    b.put(0, 1)  # 'a' (97): length 1
    zeros(158)
    b.put(0, 1)  # end of block (256): length 1
    if litlen_codes > 257:
        zeros(litlen_codes - 257)  # the codes past 256, all unused
    b.put(0, 1)  # the distance code: length 1
    b.put(0, 1)  # 'a'
    b.put(1, 1)  # end of block
    return b"\x1f\x8b\x08\x00\0\0\0\0\x00\xff" + b.bytes() + struct.pack("<II", zlib.crc32(b"a"), 1)


def main() -> None:
    name = ctypes.util.find_library("deflate") or "libdeflate.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise SystemExit("libdeflate's shared library is not installed (Debian: apt-get install libdeflate0)") from None
    lib.libdeflate_alloc_decompressor.restype = ctypes.c_void_p
    lib.libdeflate_free_decompressor.argtypes = [ctypes.c_void_p]
    d = lib.libdeflate_alloc_decompressor()
    try:
        for n in (270, 286, 287, 288):
            data = member(n)
            try:
                z = zlib.decompressobj(31)
                inflated = z.decompress(data)
                said = f"reads {inflated!r}" if z.eof else "wants more input"
            except zlib.error as exc:
                said = f"refuses it ({exc})"
            out = ctypes.create_string_buffer(64)
            used, got = ctypes.c_size_t(), ctypes.c_size_t()
            rc = lib.libdeflate_gzip_decompress_ex(ctypes.c_void_p(d), data, ctypes.c_size_t(len(data)), out,
                                                   ctypes.c_size_t(64), ctypes.byref(used), ctypes.byref(got))
            theirs = f"reads {out.raw[:got.value]!r}" if rc == 0 else f"refuses it (result {rc})"
            print(f"{n} literal/length codes declared: zlib {said}; libdeflate {theirs}")
    finally:
        lib.libdeflate_free_decompressor(d)


if __name__ == "__main__":
    main()
