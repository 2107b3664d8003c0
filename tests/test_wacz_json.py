"""archiver.audit.wacz_json reads a list document entry by entry: the same
entries json.loads finds, however the bytes are cut into chunks, and a
one-line error where the document stops being valid or an entry is too big."""

from __future__ import annotations

import json
import random

import pytest

from archiver.audit.wacz_json import JsonStreamError, array_entries


def cut(data: bytes, rng: random.Random) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        n = rng.choice((1, 2, 3, 7, 64, 4096))
        out.append(data[pos : pos + n])
        pos += n
    return out


def random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.randrange(-10**12, 10**12)
    if kind == 1:
        return rng.random() * 10 ** rng.randrange(-5, 20)
    if kind == 2:
        return "".join(rng.choice("ab\"\\/\n\u00e9\u20ac\U0001f600 ") for _ in range(rng.randrange(12)))
    if kind == 3:
        return rng.choice((True, False, None))
    if kind == 4:
        return rng.randrange(10)
    if kind == 5:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}": random_value(rng, depth + 1) for i in range(rng.randrange(4))}


def test_the_same_entries_as_json_loads_however_the_bytes_are_cut():
    rng = random.Random(10)
    for _ in range(400):
        doc = {"before": random_value(rng), "records": [random_value(rng) for _ in range(rng.randrange(6))],
               "after": random_value(rng)}
        text = json.dumps(doc, indent=rng.choice((None, 0, 2)), ensure_ascii=rng.random() < 0.5)
        data = text.encode()
        assert list(array_entries(cut(data, rng), "records")) == json.loads(text)["records"], text


@pytest.mark.parametrize("data", [b"", b"[]", b"{", b'{"records": [1, 2', b'{"records": [1 2]}', b'{"records": []} x',
                                  b'{1: 2}', b'{"records": [\xff]}', b'{"records": [' + b"[" * 5000 + b"]" * 5000 + b"]}"])
def test_a_document_that_is_not_an_object_of_lists_is_one_error(data):
    with pytest.raises(JsonStreamError) as info:
        list(array_entries([data], "records"))
    assert "\n" not in str(info.value)


def test_entries_before_the_damage_are_given_and_a_big_entry_stops_the_reading():
    data = b'{"records": [{"a": 1}, {"b": "' + b"x" * 100_000 + b'"}, {"c": 3}]}'
    got = []
    with pytest.raises(JsonStreamError, match="65536"):
        for entry in array_entries([data[i : i + 1000] for i in range(0, len(data), 1000)], "records"):
            got.append(entry)
    assert got == [{"a": 1}]


def test_a_number_cut_at_a_chunk_end_is_read_whole():
    assert list(array_entries([b'{"records": [12', b"34, 5", b"6]}"], "records")) == [1234, 56]


def test_split_lines_matches_a_plain_split_and_drops_long_lines():
    from archiver.audit.wacz_reader import split_lines

    rng = random.Random(11)
    for _ in range(500):
        data = bytes(rng.choice(b"ab\r\n") for _ in range(rng.randrange(60)))
        cap = rng.randrange(1, 8)
        want = [None if len(line) > cap else line.rstrip(b"\r") for line in data.split(b"\n")]
        if want and want[-1] is not None and not want[-1] and not data.endswith(b"\r"):
            want.pop()  # no line after the last line end
        if data.endswith(b"\n"):
            want = want[: len(data.split(b"\n")) - 1]
        got = list(split_lines(cut(data, rng), cap))
        assert got == want, (data, cap)


def test_inflate_pieces_inflates_every_member_within_its_cap():
    import gzip

    from store.warcreader import inflate_pieces

    rng = random.Random(12)
    for _ in range(100):
        parts = [rng.randbytes(rng.randrange(2000)) * rng.randrange(1, 4) for _ in range(rng.randrange(1, 5))]
        data = b"".join(gzip.compress(p) for p in parts)
        assert b"".join(inflate_pieces(cut(data, rng), 1 << 20)) == b"".join(parts)
        with pytest.raises(ValueError):
            list(inflate_pieces([data[:-3]], 1 << 20))
    with pytest.raises(ValueError, match="beyond"):
        list(inflate_pieces([gzip.compress(bytes(1 << 20))], 1000))
    with pytest.raises(ValueError):
        list(inflate_pieces([b"not gzip at all"], 1000))
