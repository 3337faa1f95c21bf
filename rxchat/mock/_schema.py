"""Deterministic JSON-Schema instance generation (and a matching subset validator).

The mock server must stream structured output and tool arguments that *validate* against
the schema in the request. This module generates one instance per schema from a seeded
``random.Random``: same schema + same seed -> same value.

Supported keywords: ``type`` (single or list), ``properties``, ``required``,
``additionalProperties``, ``minProperties``, ``items``, ``prefixItems``, ``minItems``,
``maxItems``, ``uniqueItems``, ``enum``, ``const``, ``anyOf``, ``oneOf``, ``allOf``,
``$ref`` (local JSON pointers such as ``#/$defs/X`` or ``#/definitions/X``), string
``minLength`` / ``maxLength`` / ``format`` (date-time, date, time, email, uri, uuid, ipv4),
numeric ``minimum`` / ``maximum`` / ``exclusiveMinimum`` / ``exclusiveMaximum`` /
``multipleOf``. ``pattern`` is not interpreted: a schema whose only satisfiable strings are
defined by a pattern may not validate.

What one schema may make the generator produce is bounded, so that a request cannot occupy the
mock server's event loop (every other client waits while an instance is generated):
:data:`MAX_VALUES` JSON values per instance (retries for ``uniqueItems`` and ``oneOf`` count),
:data:`MAX_STRING_LENGTH` characters per string and :data:`MAX_TOTAL_CHARS` characters in all.
A schema beyond them raises :class:`SchemaError` naming the limit (a 400 from the server).
"""

from __future__ import annotations

import math
import random
from typing import Any, TypeGuard

import orjson

__all__ = [
    "MAX_STRING_LENGTH",
    "MAX_TOTAL_CHARS",
    "MAX_VALUES",
    "SchemaError",
    "generate_instance",
    "matches",
]

_MAX_DEPTH = 6

MAX_VALUES = 10_000
"""JSON values one generated instance may hold (every value generated counts, retries too)."""
MAX_STRING_LENGTH = 100_000
"""Characters of one generated string (a larger ``minLength`` is refused)."""
MAX_TOTAL_CHARS = 1_000_000
"""Characters of all the strings of one generated instance."""

_WORDS = (
    "river",
    "signal",
    "amber",
    "stream",
    "harbor",
    "lantern",
    "meadow",
    "orbit",
    "pebble",
    "quartz",
    "summit",
    "tidal",
    "velvet",
    "willow",
    "cobalt",
    "ember",
    "falcon",
    "granite",
)
_HINTS: dict[str, tuple[str, ...]] = {
    "city": ("Edinburgh", "San Francisco", "Lisbon", "Kyoto", "Montreal", "Nairobi"),
    "country": ("GB", "US", "PT", "JP", "CA", "KE"),
    "state": ("CA", "NY", "WA", "TX"),
    "ticker": ("AAPL", "MSFT", "NVDA", "GOOG"),
    "exchange": ("NASDAQ", "NYSE", "LSE"),
    "name": ("Ada", "Grace", "Alan", "Edsger", "Barbara"),
    "language": ("python", "rust", "haskell"),
    "currency": ("USD", "EUR", "GBP", "JPY"),
}


class SchemaError(ValueError):
    """The schema is malformed or cannot be satisfied by the generator."""


def _resolve(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        raise SchemaError(f"only local $ref values are supported, got {ref!r}")
    node = root
    for raw in ref[1:].split("/"):
        if raw == "":
            continue
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise SchemaError(f"unresolvable $ref {ref!r}")
    return node


def _types_of(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type")
    if isinstance(t, str):
        return [t]
    if isinstance(t, list):
        return [x for x in t if isinstance(x, str)]
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return ["object"]
    if "items" in schema or "prefixItems" in schema:
        return ["array"]
    return []


def _is_number(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _type_ok(t: str, v: Any) -> bool:
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "integer":
        return _is_number(v) and float(v).is_integer()
    if t == "number":
        return _is_number(v)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "null":
        return v is None
    return False


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def matches(schema: Any, value: Any, root: Any | None = None) -> bool:
    """Whether ``value`` satisfies ``schema`` for the supported keyword subset.

    Args:
        schema: a JSON schema (dict or boolean).
        value: a JSON-compatible Python value.
        root: the document ``$ref`` pointers resolve against (defaults to ``schema``).

    Returns:
        True when every supported keyword accepts the value.
    """
    if root is None:
        root = schema
    if schema is True:
        return True
    if schema is False:
        return False
    if not isinstance(schema, dict):
        return False
    if "$ref" in schema and not matches(_resolve(root, schema["$ref"]), value, root):
        return False
    if "const" in schema and not _json_equal(schema["const"], value):
        return False
    if "enum" in schema and not any(_json_equal(e, value) for e in schema["enum"]):
        return False
    if "allOf" in schema and not all(matches(s, value, root) for s in schema["allOf"]):
        return False
    if "anyOf" in schema and not any(matches(s, value, root) for s in schema["anyOf"]):
        return False
    if "oneOf" in schema and sum(1 for s in schema["oneOf"] if matches(s, value, root)) != 1:
        return False
    if "type" in schema:
        types = _types_of(schema)
        if not any(_type_ok(t, value) for t in types):
            return False
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                return False
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                if not matches(props[k], v, root):
                    return False
            elif not matches(extra, v, root):
                return False
        if len(value) < schema.get("minProperties", 0):
            return False
    elif isinstance(value, list):
        prefix = schema.get("prefixItems", [])
        items = schema.get("items", True)
        for i, v in enumerate(value):
            sub = prefix[i] if i < len(prefix) else items
            if not matches(sub, v, root):
                return False
        if len(value) < schema.get("minItems", 0):
            return False
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return False
    elif isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return False
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return False
    elif _is_number(value):
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
        ex_min = schema.get("exclusiveMinimum")
        if _is_number(ex_min) and value <= ex_min:
            return False
        ex_max = schema.get("exclusiveMaximum")
        if _is_number(ex_max) and value >= ex_max:
            return False
        mult = schema.get("multipleOf")
        if _is_number(mult) and mult > 0:
            q = value / mult
            if abs(q - round(q)) > 1e-9:
                return False
    return True


def _limit(what: str, asked: object, limit: int, unit: str) -> SchemaError:
    return SchemaError(
        f"{what} {asked} is above the mock server's limit of {limit} {unit} "
        "(it bounds what one request may make it generate)"
    )


def _unique_key(value: Any) -> bytes:
    """Equal keys for JSON-equal values: ``1`` and ``1.0`` alike, ``true`` and ``1`` not."""

    def canon(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {k: canon(x) for k, x in v.items()}
        if isinstance(v, list):
            return [canon(x) for x in v]
        return v

    return orjson.dumps(canon(value), option=orjson.OPT_SORT_KEYS)


class _Generator:
    def __init__(self, root: Any, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.values = 0
        self.chars = 0

    def _count_value(self) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            raise SchemaError(
                f"an instance of this schema needs more than {MAX_VALUES} JSON values, the "
                "mock server's limit per instance (minItems, minProperties and required "
                "properties multiply through nesting and $ref)"
            )

    def _count_chars(self, n: int) -> None:
        self.chars += n
        if self.chars > MAX_TOTAL_CHARS:
            raise SchemaError(
                f"an instance of this schema needs more than {MAX_TOTAL_CHARS} characters of "
                "strings, the mock server's limit per instance"
            )

    def gen(self, schema: Any, depth: int, hint: str | None) -> Any:
        self._count_value()
        if schema is True:
            return self._string({}, hint)
        if schema is False or not isinstance(schema, dict):
            raise SchemaError("schema `false` (or a non-object schema) has no instance")
        if depth > 64:
            raise SchemaError("schema recursion does not terminate")
        if "$ref" in schema:
            target = _resolve(self.root, schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            if rest and isinstance(target, dict):
                target = {**target, **rest}
            return self.gen(target, depth + 1, hint)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            options = schema["enum"]
            if not isinstance(options, list) or not options:
                raise SchemaError("`enum` must be a non-empty list")
            return options[self.rng.randrange(len(options))]
        if "allOf" in schema:
            return self.gen(self._merge_all(schema), depth + 1, hint)
        if "anyOf" in schema:
            return self.gen(self._pick_branch(schema["anyOf"], depth), depth + 1, hint)
        if "oneOf" in schema:
            return self._one_of(schema, depth, hint)
        types = _types_of(schema)
        if not types:
            return self._string({}, hint)
        non_null = [t for t in types if t != "null"]
        if not non_null or (depth >= _MAX_DEPTH and "null" in types):
            return None
        t = non_null[0]
        if t == "object":
            return self._object(schema, depth)
        if t == "array":
            return self._array(schema, depth, hint)
        if t == "string":
            return self._string(schema, hint)
        if t == "integer":
            return self._integer(schema)
        if t == "number":
            return self._number(schema)
        if t == "boolean":
            return self.rng.random() < 0.5
        raise SchemaError(f"unsupported type {t!r}")

    def _merge_all(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for sub in schema["allOf"]:
            if isinstance(sub, dict) and "$ref" in sub:
                sub = _resolve(self.root, sub["$ref"])
            if not isinstance(sub, dict):
                continue
            for k, v in sub.items():
                if k == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **v}
                elif k == "required":
                    merged["required"] = [*merged.get("required", []), *v]
                else:
                    merged.setdefault(k, v)
        return merged

    def _recursive(self, schema: Any) -> bool:
        return isinstance(schema, dict) and ("$ref" in schema or "anyOf" in schema)

    def _pick_branch(self, branches: Any, depth: int) -> Any:
        if not isinstance(branches, list) or not branches:
            raise SchemaError("`anyOf`/`oneOf` must be a non-empty list")

        def is_null(b: Any) -> bool:
            return isinstance(b, dict) and b.get("type") == "null"

        if depth >= _MAX_DEPTH:
            # Prefer branches that end the recursion.
            for b in branches:
                if is_null(b):
                    return b
            for b in branches:
                if not self._recursive(b):
                    return b
        for b in branches:
            if not is_null(b):
                return b
        return branches[0]

    def _one_of(self, schema: dict[str, Any], depth: int, hint: str | None) -> Any:
        branches = schema["oneOf"]
        first = self._pick_branch(branches, depth)
        ordered = [first, *[b for b in branches if b is not first]]
        for branch in ordered:
            value = self.gen(branch, depth + 1, hint)
            if sum(1 for b in branches if matches(b, value, self.root)) == 1:
                return value
        raise SchemaError("could not generate a value matching exactly one `oneOf` branch")

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties", {}) or {}
        required = list(schema.get("required", []) or [])
        extra = schema.get("additionalProperties", True)
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if depth >= _MAX_DEPTH and name not in required:
                continue
            out[name] = self.gen(sub, depth + 1, name)
        for name in required:
            if name not in out:
                if extra is False:
                    raise SchemaError(f"required property {name!r} is not allowed")
                out[name] = self.gen(extra if isinstance(extra, dict) else True, depth + 1, name)
        i = 0
        min_properties = int(schema.get("minProperties", 0))
        if min_properties > MAX_VALUES:
            raise _limit("minProperties", min_properties, MAX_VALUES, "values per instance")
        while len(out) < min_properties:
            if extra is False:
                raise SchemaError("`minProperties` cannot be met without extra properties")
            out[f"key_{i}"] = self.gen(extra if isinstance(extra, dict) else True, depth + 1, None)
            i += 1
        return out

    def _array(self, schema: dict[str, Any], depth: int, hint: str | None) -> list[Any]:
        prefix = list(schema.get("prefixItems", []) or [])
        items = schema.get("items", True)
        lo = int(schema.get("minItems", 0))
        if lo > MAX_VALUES:
            raise _limit("minItems", lo, MAX_VALUES, "values per instance")
        hi = schema.get("maxItems")
        want = lo if depth >= _MAX_DEPTH else max(lo, 2)
        if prefix and items is False:
            want = len(prefix) if hi is None else min(len(prefix), int(hi))
        if hi is not None:
            want = min(want, int(hi))
        out: list[Any] = []
        unique = bool(schema.get("uniqueItems"))
        seen: set[bytes] = set()  # keys of the items so far, when they must be unique
        attempts = 0
        while len(out) < want:
            idx = len(out)
            sub = prefix[idx] if idx < len(prefix) else items
            value = self.gen(sub, depth + 1, hint)
            attempts += 1
            if unique:
                key = _unique_key(value)
                if key in seen:
                    if attempts > 50 * want:
                        if len(out) >= lo:
                            break
                        raise SchemaError("cannot generate enough unique items")
                    continue
                seen.add(key)
            out.append(value)
        return out

    def _string(self, schema: dict[str, Any], hint: str | None) -> str:
        fmt = schema.get("format")
        r = self.rng
        if fmt == "date-time":
            s = f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z"
        elif fmt == "date":
            s = f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        elif fmt == "time":
            s = f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z"
        elif fmt == "email":
            s = f"{r.choice(_WORDS)}@example.com"
        elif fmt in ("uri", "url"):
            s = f"https://example.com/{r.choice(_WORDS)}"
        elif fmt == "uuid":
            h = f"{r.getrandbits(128):032x}"
            s = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
        elif fmt == "ipv4":
            s = ".".join(str(r.randint(1, 254)) for _ in range(4))
        else:
            key = (hint or "").lower()
            choices = _HINTS.get(key)
            if choices is not None:
                s = r.choice(choices)
            else:
                s = " ".join(r.choice(_WORDS) for _ in range(r.randint(1, 3)))
        lo = int(schema.get("minLength", 0))
        if lo > MAX_STRING_LENGTH:
            raise _limit("minLength", lo, MAX_STRING_LENGTH, "characters per string")
        hi = schema.get("maxLength")
        if len(s) < lo:
            s = s + "x" * (lo - len(s))
        if hi is not None and len(s) > int(hi):
            s = s[: int(hi)]
        self._count_chars(len(s))
        return s

    def _bounds(self, schema: dict[str, Any], integer: bool) -> tuple[float, float]:
        lo = -math.inf
        hi = math.inf
        step = 1 if integer else 0.01
        if _is_number(schema.get("minimum")):
            lo = float(schema["minimum"])
        if _is_number(schema.get("exclusiveMinimum")):
            lo = max(lo, float(schema["exclusiveMinimum"]) + step)
        if _is_number(schema.get("maximum")):
            hi = float(schema["maximum"])
        if _is_number(schema.get("exclusiveMaximum")):
            hi = min(hi, float(schema["exclusiveMaximum"]) - step)
        if lo > hi:
            raise SchemaError("numeric bounds are empty")
        if lo == -math.inf and hi == math.inf:
            lo, hi = 0.0, 100.0
        elif lo == -math.inf:
            lo = hi - 100
        elif hi == math.inf:
            hi = lo + 100
        return lo, hi

    def _integer(self, schema: dict[str, Any]) -> int:
        lo, hi = self._bounds(schema, integer=True)
        ilo, ihi = math.ceil(lo), math.floor(hi)
        mult = schema.get("multipleOf")
        if _is_number(mult) and mult > 0:
            k_lo = math.ceil(ilo / mult)
            k_hi = math.floor(ihi / mult)
            if k_lo > k_hi:
                raise SchemaError("no multiple of `multipleOf` within the bounds")
            value = self.rng.randint(k_lo, k_hi) * mult
            return int(value)
        if ilo > ihi:
            raise SchemaError("no integer within the bounds")
        return self.rng.randint(ilo, ihi)

    def _number(self, schema: dict[str, Any]) -> float | int:
        mult = schema.get("multipleOf")
        if _is_number(mult) and mult > 0:
            lo, hi = self._bounds(schema, integer=False)
            k = self.rng.randint(
                math.ceil(lo / mult), max(math.ceil(lo / mult), math.floor(hi / mult))
            )
            value = k * mult
            return int(value) if float(value).is_integer() else float(value)
        lo, hi = self._bounds(schema, integer=False)
        value = round(self.rng.uniform(lo, hi), 2)
        return min(max(value, lo), hi)


def generate_instance(schema: Any, seed: int) -> Any:
    """Generate one JSON value that validates against ``schema``, deterministically.

    Args:
        schema: a JSON schema (dict or ``True``).
        seed: the seed; the same schema and seed always give the same value.

    Returns:
        A JSON-compatible Python value.

    Raises:
        SchemaError: the schema is malformed or unsatisfiable for the generator.

    Example:
        >>> generate_instance({"type": "object", "properties": {"n": {"const": 1}}}, 0)
        {'n': 1}
    """
    gen = _Generator(schema, random.Random(seed))
    try:
        return gen.gen(schema, 0, None)
    except RecursionError as err:  # pragma: no cover - defensive
        raise SchemaError("schema is too deeply nested") from err
