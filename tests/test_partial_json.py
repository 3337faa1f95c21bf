"""Tests for the incremental partial-JSON parser, differential against jiter's partial mode."""

from __future__ import annotations

import copy
import json
import math
import random
from typing import Any

import jiter
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxchat._partial_json import PartialJSONError, PartialJSONParser

MODES: list[tuple[bool, bool | str]] = [(False, True), (True, "trailing-strings")]


def jiter_partial(prefix: str, mode: bool | str) -> Any:
    """jiter's value for a prefix; None where jiter raises (nothing usable yet)."""
    try:
        return jiter.from_json(prefix.encode(), partial_mode=mode)  # type: ignore[arg-type]
    except ValueError:
        return None


def same(a: Any, b: Any) -> bool:
    """Exact equality: types (int vs float, list vs dict), key order, -0.0, nan."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if math.isnan(x) or math.isnan(y):
                if not (math.isnan(x) and math.isnan(y)):
                    return False
            elif x != y or math.copysign(1.0, x) != math.copysign(1.0, y):
                return False
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif isinstance(x, dict):
            if list(x) != list(y):
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif x != y:
            return False
    return True


def check_all_prefixes(doc: str, partial_strings: bool, mode: bool | str) -> None:
    """Feed one character at a time and compare every prefix with jiter."""
    p = PartialJSONParser(partial_strings=partial_strings)
    assert p.value is None
    for i, ch in enumerate(doc):
        p.feed(ch)
        expected = jiter_partial(doc[: i + 1], mode)
        got = p.value
        assert same(got, expected), (doc[: i + 1], got, expected)
    assert same(p.finish(), jiter.from_json(doc.encode()))


def check_split(doc: str, cuts: list[int], partial_strings: bool, mode: bool | str) -> None:
    """Feed the deltas between cut points; compare at every delta boundary."""
    p = PartialJSONParser(partial_strings=partial_strings)
    prev = 0
    for cut in [*sorted(set(cuts)), len(doc)]:
        if cut <= prev:
            continue
        p.feed(doc[prev:cut])
        prev = cut
        assert same(p.value, jiter_partial(doc[:cut], mode)), doc[:cut]
    assert same(p.finish(), jiter.from_json(doc.encode()))


CORPUS = [
    '{"city": "San Francisco", "temperature": 65, "units": "f"}',
    '{"city":"Paris","forecast":[{"day":"mon","high":21.5,"low":12},'
    '{"day":"tue","high":19,"low":11.25}],"ok":true,"note":null}',
    '{"name": "get_weather", "arguments": {"location": "Tokyo, JP", "unit": "celsius"}}',
    '{"steps":[{"explanation":"Subtract 7","output":"8x = -30"},'
    '{"explanation":"Divide by 8","output":"x = -3.75"}],"final_answer":"x = -3.75"}',
    "[1, -2, 3.5, -0.0, 0.0, 1e5, 1E-3, 2.5e+10, 0, -0, 10, 1.0, 100e-2, 5E+0]",
    "[123456789012345678901234567890, -98765432109876543210, 1e400, -1e400, 1e-400]",
    "[0.1, 0.30000000000000004, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308]",
    "[1.00000000000000011102230246251565404236316680908203125, 9007199254740993]",
    ' { "a" : [ true , false , null , { } , [ ] , "x\\"y\\\\z\\/\\b\\f\\n\\r\\t" ] } ',
    '{"b\\u00e9": "\\ud83d\\ude00 caf\\u00e9 é😀 \\u4E2D\\uD834\\uDD1E", "e": "\\u0000\\u001f"}',
    '{"a":1,"b":2,"a":{"c":[1,2]},"b":"x","a":3}',
    '"\\ud83d\\ude00"',
    '"plain text with spaces and ünïcödé"',
    "12345",
    "-0.5e-3",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    "[[[[]]],[{}],{},[[]]]",
    '{"":"","  ":[""],"k":{"":{}}}',
    '\n\t[\r\n1\n,\t2 ,\r"three"\n]\n\t ',
    '[{"a": [{"b": [{"c": "deep"}]}]}, [[1, [2, [3, [4]]]]]]',
    '{"escapes":"\\\\\\"\\\\u1234 not an escape","slash":"a\\/b"}',
    '["\\u00e9\\u00E9", "\\uffff", "\\ud800\\udc00", "\\udbff\\udfff"]',
    # long tokens (longer than the parser's re-scan window, so they are streamed)
    '{"long": "' + "abcdefghij" * 40 + '", "k": 1}',
    '["' + "x" * 255 + '", "' + "y" * 256 + '", "' + "z" * 257 + '"]',
    '{"' + "key" * 120 + '": "v", "esc": "' + "ab\\n\\u00e9\\ud83d\\ude00" * 30 + '"}',
    "[" + "9" * 700 + ", -" + "1" * 300 + ".5e-" + "7" * 3 + ", 0." + "3" * 400 + "]",
    '"' + "\\t" * 200 + '"',
]


@pytest.mark.parametrize(("partial_strings", "mode"), MODES)
@pytest.mark.parametrize("doc", CORPUS)
def test_every_prefix_matches_jiter(doc: str, partial_strings: bool, mode: bool | str) -> None:
    check_all_prefixes(doc, partial_strings, mode)


@pytest.mark.parametrize(("partial_strings", "mode"), MODES)
@pytest.mark.parametrize("doc", CORPUS)
def test_random_splits_match_jiter(doc: str, partial_strings: bool, mode: bool | str) -> None:
    rng = random.Random(doc)
    for _ in range(20):
        cuts = [rng.randrange(len(doc) + 1) for _ in range(rng.randrange(1, 12))]
        check_split(doc, cuts, partial_strings, mode)


@pytest.mark.parametrize(
    ("prefix", "expected", "expected_trailing"),
    [
        ("", None, None),
        ("   \n", None, None),
        ("-", None, None),
        ("1.", None, None),
        ("1e", None, None),
        ("1e-", None, None),
        ("12", 12, 12),
        ("-0", 0, 0),
        ("1.5", 1.5, 1.5),
        ("1e5", 100000.0, 100000.0),
        ("tru", None, None),
        ('"ab', None, "ab"),
        ('"a\\u00', None, "a"),
        ('"\\ud83d', None, ""),
        ('"\\ud83d\\ude', None, ""),
        ("[1.", [], []),
        ("[tr", [], []),
        ('["a', [], ["a"]),
        ('{"a', {}, {}),
        ('{"a":', {}, {}),
        ('{"a":"x', {}, {"a": "x"}),
        ('{"a":1,"a":"x', {"a": 1}, {"a": "x"}),
        ('{"a":[1,{"b":"c', {"a": [1, {}]}, {"a": [1, {"b": "c"}]}),
    ],
)
def test_documented_edge_cases(prefix: str, expected: Any, expected_trailing: Any) -> None:
    for partial_strings, want in ((False, expected), (True, expected_trailing)):
        p = PartialJSONParser(partial_strings=partial_strings)
        p.feed(prefix)
        assert same(p.value, want)
        assert same(p.snapshot(), want)


def test_int_and_float_types_are_exact() -> None:
    p = PartialJSONParser()
    p.feed("[1, 1.0, -0, -0.0, 1e2, 12345678901234567890123, 1e400")
    v = p.value
    assert [type(x) for x in v] == [int, float, int, float, float, int, float]
    assert math.copysign(1.0, v[3]) == -1.0
    assert v[5] == 12345678901234567890123
    assert v[6] == math.inf


# ----------------------------------------------------------------------------- hypothesis

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.text(min_size=250, max_size=300)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)
number_texts = st.from_regex(r"\A-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?\Z")

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _u(cp: int, rng: random.Random) -> str:
    h = f"{cp:04x}"
    return "\\u" + (h.upper() if rng.random() < 0.5 else h)


def encode_string(s: str, rng: random.Random, ensure_ascii: bool) -> str:
    out = ['"']
    for c in s:
        cp = ord(c)
        must = c in '"\\' or cp < 0x20 or (ensure_ascii and cp > 0x7E)
        if not must and rng.random() < 0.9:
            out.append(c)
        elif c in _SHORT_ESCAPES and rng.random() < 0.8:
            out.append(_SHORT_ESCAPES[c])
        elif c == "/" and rng.random() < 0.5:
            out.append("\\/")
        elif cp > 0xFFFF:
            cp -= 0x10000
            out.append(_u(0xD800 + (cp >> 10), rng) + _u(0xDC00 + (cp & 0x3FF), rng))
        else:
            out.append(_u(cp, rng))
    out.append('"')
    return "".join(out)


def serialise(value: Any, rng: random.Random, ensure_ascii: bool) -> str:
    """JSON text with random whitespace and random (valid) escape choices, iteratively."""

    def ws() -> str:
        if rng.random() < 0.6:
            return ""
        return "".join(rng.choice(" \t\n\r") for _ in range(rng.randrange(1, 4)))

    out: list[str] = [ws()]
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, tuple):  # a raw piece of text
            out.append(item[0])
        elif isinstance(item, str):
            out.append(encode_string(item, rng, ensure_ascii))
        elif isinstance(item, list):
            pieces: list[Any] = [("[" + ws(),)]
            for k, x in enumerate(item):
                if k:
                    pieces.append((ws() + "," + ws(),))
                pieces.append(x)
            pieces.append((ws() + "]",))
            todo.extend(reversed(pieces))
        elif isinstance(item, dict):
            pieces = [("{" + ws(),)]
            for k, (key, x) in enumerate(item.items()):
                if k:
                    pieces.append((ws() + "," + ws(),))
                pieces.extend([key, (ws() + ":" + ws(),), x])
            pieces.append((ws() + "}",))
            todo.extend(reversed(pieces))
        else:
            out.append(json.dumps(item))
    out.append(ws())
    return "".join(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=json_values,
    rng=st.randoms(use_true_random=False),
    ensure_ascii=st.booleans(),
    partial_strings=st.booleans(),
)
def test_hypothesis_every_prefix_matches_jiter(
    value: Any, rng: random.Random, ensure_ascii: bool, partial_strings: bool
) -> None:
    doc = serialise(value, rng, ensure_ascii)
    mode: bool | str = "trailing-strings" if partial_strings else True
    check_all_prefixes(doc, partial_strings, mode)
    assert same(json.loads(doc), jiter.from_json(doc.encode()))


@settings(max_examples=300, deadline=None)
@given(
    value=json_values,
    rng=st.randoms(use_true_random=False),
    ensure_ascii=st.booleans(),
    partial_strings=st.booleans(),
    data=st.data(),
)
def test_hypothesis_random_deltas_match_jiter_and_snapshots_stay_put(
    value: Any, rng: random.Random, ensure_ascii: bool, partial_strings: bool, data: st.DataObject
) -> None:
    doc = serialise(value, rng, ensure_ascii)
    mode: bool | str = "trailing-strings" if partial_strings else True
    cuts = data.draw(st.lists(st.integers(0, len(doc)), max_size=20))
    p = PartialJSONParser(partial_strings=partial_strings)
    taken: list[tuple[Any, Any]] = []
    prev = 0
    for cut in [*sorted(set(cuts)), len(doc)]:
        if cut <= prev:
            continue
        p.feed(doc[prev:cut])
        prev = cut
        snap = p.value
        assert same(snap, jiter_partial(doc[:cut], mode))
        taken.append((snap, copy.deepcopy(snap)))
    final = p.finish()
    assert same(final, jiter.from_json(doc.encode()))
    assert p.complete
    for snap, frozen in taken:  # earlier snapshots did not change under later feeds
        assert same(snap, frozen)


@settings(max_examples=300, deadline=None)
@given(num=number_texts, rng=st.randoms(use_true_random=False))
def test_hypothesis_numbers_of_every_shape(num: str, rng: random.Random) -> None:
    for doc in (num, f"[{num}]", f'{{"n":{num}}}', f"[{num}, {num}]"):
        for partial_strings, mode in MODES:
            check_all_prefixes(doc, partial_strings, mode)
            cuts = [rng.randrange(len(doc) + 1) for _ in range(3)]
            check_split(doc, cuts, partial_strings, mode)


@settings(max_examples=300, deadline=None)
@given(
    value=json_values,
    rng=st.randoms(use_true_random=False),
    data=st.data(),
)
def test_hypothesis_mutated_text_rejected_exactly_when_invalid(
    value: Any, rng: random.Random, data: st.DataObject
) -> None:
    """Corrupt a valid document; the parser accepts it iff strict jiter does, and an
    error names a position inside the delta that raised it."""
    doc = serialise(value, rng, ensure_ascii=False)
    pos = data.draw(st.integers(0, len(doc)))
    junk = data.draw(st.sampled_from([*'{}[]:,"\\ 0-.eE+tfnxu\x01', "\ud800"]))
    how = data.draw(st.sampled_from(["insert", "replace", "delete"]))
    if how == "insert":
        text = doc[:pos] + junk + doc[pos:]
    elif how == "replace":
        text = doc[:pos] + junk + doc[pos + 1 :]
    else:
        text = doc[:pos] + doc[pos + 1 :]
    try:
        expected: Any = jiter.from_json(text.encode("utf-8", "surrogatepass"), allow_inf_nan=False)
        valid = True
    except ValueError:
        valid = False
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(text)), max_size=8))))
    p = PartialJSONParser()
    prev = 0
    try:
        for cut in [*cuts, len(text)]:
            if cut <= prev:
                continue
            p.feed(text[prev:cut])
            prev = cut
        got = p.finish()
    except PartialJSONError as err:
        assert not valid, (text, err)
        assert 0 <= err.position <= len(err.text)
        # `value` still gives what was parsed before the offending character
        assert same(p.value, jiter_partial(text[: err.position], True))
        # Everything before the reported position is a viable prefix.
        PartialJSONParser().feed(text[: err.position])
        # Split invariance: one character at a time fails at the same position, on the
        # character that lies inside the delta that raised above.
        q = PartialJSONParser()
        with pytest.raises(PartialJSONError) as one_by_one:
            for ch in text:
                q.feed(ch)
            q.finish()
        assert one_by_one.value.position == err.position
        assert one_by_one.value.text == text[: len(one_by_one.value.text)]
        if len(err.text) == prev:  # raised by finish(): input ended too early
            assert err.position == len(text)
        else:
            assert prev < len(one_by_one.value.text) <= len(err.text)
    else:
        assert valid, text
        assert same(got, expected)


# ----------------------------------------------------------------------------- snapshots


def test_snapshot_independent_of_later_feeds() -> None:
    p = PartialJSONParser(partial_strings=True)
    p.feed('{"items": [{"name": "a", "tags": ["x"')
    s1 = p.value
    p.feed(', "y"], "n": 1')
    s2 = p.value
    p.feed('}, {"name": "bo')
    s3 = p.value
    p.feed('b"}], "done": true}')
    final = p.finish()
    assert s1 == {"items": [{"name": "a", "tags": ["x"]}]}
    assert s2 == {"items": [{"name": "a", "tags": ["x", "y"], "n": 1}]}
    assert s3 == {"items": [{"name": "a", "tags": ["x", "y"], "n": 1}, {"name": "bo"}]}
    assert final == {
        "items": [{"name": "a", "tags": ["x", "y"], "n": 1}, {"name": "bob"}],
        "done": True,
    }


def test_snapshot_shares_closed_containers_and_caches() -> None:
    p = PartialJSONParser()
    p.feed('[{"a": [1, 2]}, ')
    s1 = p.value
    assert p.value is s1  # nothing changed: the cached snapshot
    p.feed("   \n")
    assert p.value is s1  # whitespace does not change the value
    p.feed('{"b": ')
    s2 = p.value
    assert s2 == [{"a": [1, 2]}, {}]
    p.feed('"unfin')
    assert p.value is s2  # an unterminated string (and its key) is not part of the value
    p.feed('ished"')
    s3 = p.value
    assert s3 is not s2
    assert s3[0] is s1[0]  # the closed object is shared, not copied
    assert s3 == [{"a": [1, 2]}, {"b": "unfinished"}]
    assert s2 == [{"a": [1, 2]}, {}]


def test_value_and_snapshot_agree() -> None:
    p = PartialJSONParser()
    p.feed('{"a": [1')
    assert p.snapshot() is p.value
    assert p.value == {"a": [1]}


# ----------------------------------------------------------------------------- errors

INVALID = [
    # (text, index of the char whose feed raises, reported position, offending char)
    ('{"a" 1}', 5, 5, "1"),
    ("[1] x", 4, 4, "x"),
    ("1 2", 2, 2, "2"),
    ("[1,]", 3, 3, "]"),
    ('{"a":1,}', 7, 7, "}"),
    ('{"a":1 "b"', 7, 7, '"'),
    ("[1 2", 3, 3, "2"),
    ("01", 1, 1, "1"),
    ("-a", 1, 1, "a"),
    ("1.e5", 2, 2, "e"),
    ("1e+x", 3, 3, "x"),
    ('"\\x"', 2, 2, "x"),
    ('"a\x01"', 2, 2, "\x01"),
    ('"\\ud83dx"', 7, 7, "x"),
    ('"\\ud83d"', 7, 7, '"'),
    ('"\\ude00"', 6, 1, "\\"),
    ('"\\ud83d\\u0041"', 12, 7, "\\"),
    ('"\\u12g4"', 5, 5, "g"),
    ("[tx", 2, 2, "x"),
    ("nan", 1, 1, "a"),
    ("NaN", 0, 0, "N"),
    ("Infinity", 0, 0, "I"),
    ("{1:2}", 1, 1, "1"),
    ("]", 0, 0, "]"),
    ("\ufeff{}", 0, 0, "\ufeff"),
    ("\x0c1", 0, 0, "\x0c"),
    ("[}", 1, 1, "}"),
    ('{"a":1]', 6, 6, "]"),
    ('{"a":{"b":[1}', 12, 12, "}"),
    ("[1,,", 3, 3, ","),
    ("{,", 1, 1, ","),
    ("'a'", 0, 0, "'"),
    ("+1", 0, 0, "+"),
    (".5", 0, 0, "."),
    ("[1]\n\n  x", 7, 7, "x"),
]


@pytest.mark.parametrize(("text", "at", "position", "char"), INVALID)
def test_invalid_json_raises_at_the_right_feed(
    text: str, at: int, position: int, char: str
) -> None:
    p = PartialJSONParser()
    for ch in text[:at]:
        p.feed(ch)
    before = copy.deepcopy(p.value)
    with pytest.raises(PartialJSONError) as info:
        p.feed(text[at])
    err = info.value
    assert isinstance(err, ValueError)
    assert err.position == position
    assert err.text == text[: at + 1]
    assert err.text[err.position] == char
    assert f"position {position}" in str(err)
    assert repr(char) in str(err)
    # the value parsed before the offending character stays readable
    assert same(p.value, jiter_partial(text[:position], True))
    assert same(p.value, before)
    with pytest.raises(PartialJSONError) as again:  # the parser stays failed
        p.feed("1")
    assert again.value is err
    with pytest.raises(PartialJSONError):
        p.finish()

    # the same error in one big delta
    q = PartialJSONParser(partial_strings=True)
    with pytest.raises(PartialJSONError) as whole:
        q.feed(text)
    assert whole.value.position == position


def test_error_message_has_line_and_column_and_stays_short() -> None:
    p = PartialJSONParser()
    big = '{"k": "' + "x" * 100_000 + '",\n  "b" 2}'
    with pytest.raises(PartialJSONError) as info:
        p.feed(big)
    err = info.value
    assert "line 2, column 7" in str(err)
    assert err.text == big
    assert err.position == big.index("2}")
    assert len(str(err)) < 200


def test_number_out_of_range_is_an_error() -> None:
    p = PartialJSONParser()
    with pytest.raises(PartialJSONError, match="number out of range"):
        p.feed("[" + "9" * 5000 + "]")
    q = PartialJSONParser()
    with pytest.raises(PartialJSONError, match="number out of range"):
        for k in range(0, 5000, 7):
            q.feed("9" * 7 if k else "[9999999")


@pytest.mark.parametrize(
    "prefix", ["", "  ", "[", "[1", '{"a"', '{"a":', '"abc', '"a\\', "tru", "-", "1.", "1e", "[1,"]
)
def test_finish_on_incomplete_input_raises(prefix: str) -> None:
    p = PartialJSONParser()
    p.feed(prefix)
    with pytest.raises(PartialJSONError, match="incomplete JSON") as info:
        p.finish()
    assert info.value.position == len(prefix)
    assert info.value.text == prefix
    with pytest.raises(PartialJSONError):
        p.feed("]")


def test_finish_returns_the_value_and_completes_top_level_numbers() -> None:
    p = PartialJSONParser()
    p.feed("12")
    assert not p.complete  # more digits could follow
    assert p.value == 12
    p.feed("3")
    assert p.finish() == 123
    assert p.complete
    assert p.finish() == 123  # idempotent
    with pytest.raises(PartialJSONError, match="after finish"):
        p.feed(" ")

    q = PartialJSONParser()
    q.feed('{"a": [1, 2]}  \n')
    assert q.complete
    assert q.finish() == {"a": [1, 2]}

    r = PartialJSONParser()
    r.feed("7 ")
    assert r.complete


def test_text_property_and_empty_feed() -> None:
    p = PartialJSONParser()
    p.feed("")
    assert p.text == ""
    p.feed("[1,")
    p.feed("")
    p.feed(" 2]")
    assert p.text == "[1, 2]"
    assert p.finish() == [1, 2]


def test_text_survives_many_deltas_and_bytes_are_refused() -> None:
    doc = json.dumps([{"i": i, "s": "x" * (i % 7)} for i in range(300)])
    p = PartialJSONParser()
    for k in range(0, len(doc), 3):
        p.feed(doc[k : k + 3])
        if k == 300:
            assert p.text == doc[:303]
    assert p.text == doc
    assert p.finish() == json.loads(doc)
    q = PartialJSONParser()
    with pytest.raises(TypeError, match="bytes"):
        q.feed(b"[1]")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        q.feed(b"")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- nesting


def _depth_of_nested_lists(v: Any) -> int:
    depth = 0
    while isinstance(v, list):
        depth += 1
        assert len(v) <= 1
        v = v[0] if v else None
    return depth


def test_100k_deep_nesting_without_recursion() -> None:
    depth = 100_000
    p = PartialJSONParser()
    for k in range(0, depth, 997):
        p.feed("[" * min(997, depth - k))
    assert _depth_of_nested_lists(p.value) == depth
    for k in range(0, depth, 991):
        p.feed("]" * min(991, depth - k))
    assert _depth_of_nested_lists(p.finish()) == depth


def test_100k_deep_objects_without_recursion() -> None:
    depth = 100_000
    p = PartialJSONParser(partial_strings=True)
    p.feed('{"k":' * depth)
    p.feed('"leaf')
    v = p.value
    for _ in range(depth):
        assert list(v) == ["k"]
        v = v["k"]
    assert v == "leaf"
    p.feed('"' + "}" * depth)
    v = p.finish()
    for _ in range(depth):
        v = v["k"]
    assert v == "leaf"


def test_max_depth_gives_a_clear_error() -> None:
    p = PartialJSONParser(max_depth=3)
    p.feed("[[[1]]")
    with pytest.raises(PartialJSONError, match="max_depth=3") as info:
        p.feed(", [[[")
    assert info.value.position == 10
    with pytest.raises(ValueError, match="max_depth"):
        PartialJSONParser(max_depth=0)


def test_deep_prefixes_match_jiter_within_its_limit() -> None:
    doc = '{"a":' * 60 + "[" * 60 + '"x"' + "]" * 60 + "}" * 60
    for partial_strings, mode in MODES:
        check_all_prefixes(doc, partial_strings, mode)
