"""partial_objects: typed Partial[Model] items from a streamed structured answer."""

from __future__ import annotations

import itertools
from typing import Any, Literal

import pytest
from pydantic import BaseModel
from reactivex import operators as rops

import rxchat
from rxchat import operators as ops
from rxchat.mock import MockServer


class Point(BaseModel):
    lat: float
    lon: float


class City(BaseModel):
    name: str
    population: int
    area_km2: float
    climate: Literal["arid", "temperate", "tropical"]
    districts: list[str]
    center: Point


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _script(pieces: list[str]) -> list[dict[str, Any]]:
    return [
        _chunk({"role": "assistant", "content": ""}),
        *(_chunk({"content": p}) for p in pieces),
        _chunk({}, "stop"),
    ]



async def test_from_the_mock_the_last_partial_is_the_answer(server: MockServer) -> None:
    source = rxchat.chat_completion_stream(
        model="mock",
        messages=[{"role": "user", "content": "A city"}],
        base_url=server.url,
        response_format=rxchat.type_to_response_format_param(City),
    ).pipe(ops.accumulate(), ops.parse_structured(City), ops.broadcast())
    partials_task = source.pipe(ops.partial_objects(City), rops.to_list())
    partials, completion = await partials_task, None
    completion = await source.pipe(ops.final_completion())
    city = completion.choices[0].message.parsed
    assert isinstance(city, City)
    assert len(partials) > 3
    assert all(type(p) is rxchat.Partial[City] for p in partials)
    assert partials[-1].model_dump() == city.model_dump()
    assert type(partials[-1].center) is rxchat.Partial[Point]
    # each item differs from the previous one (only changes are emitted)
    assert all(a.model_dump() != b.model_dump() for a, b in itertools.pairwise(partials))


async def test_on_chunks_and_events_alike() -> None:
    pieces = ['{"name": "Li', 'ma", "population": 97', "51", '000, "area_km2": 2672.', "3, "]
    pieces += ['"climate": "ari', 'd", "districts": ["Miraflores", "Bar', 'ranco"], "center": ']
    pieces += ['{"lat": -12.0', '4, "lon": -77.', "03}}"]
    on_chunks = await rxchat.from_chunks(_script(pieces)).pipe(
        ops.partial_objects(City), rops.map(lambda p: p.model_dump()), rops.to_list()
    )
    on_events = await rxchat.from_chunks(_script(pieces)).pipe(
        ops.accumulate(),
        ops.partial_objects(City),
        rops.map(lambda p: p.model_dump()),
        rops.to_list(),
    )
    assert on_chunks == on_events
    populations = [p["population"] for p in on_chunks]
    assert populations[:4] == [None, 97, 9751, 9751000]
    areas = [p["area_km2"] for p in on_chunks if p["area_km2"] is not None]
    assert areas[0] == 2672.0 and areas[-1] == 2672.3  # "2672." kept 2672 (not missing)
    assert [p["climate"] for p in on_chunks].count("arid") >= 1
    assert None not in [
        p["climate"]
        for p in on_chunks[on_chunks.index(next(x for x in on_chunks if x["climate"])) :]
    ]
    assert on_chunks[-1] == {
        "name": "Lima",
        "population": 9751000,
        "area_km2": 2672.3,
        "climate": "arid",
        "districts": ["Miraflores", "Barranco"],
        "center": {"lat": -12.04, "lon": -77.03},
    }
    lons = [p["center"]["lon"] for p in on_chunks if p["center"] and p["center"]["lon"] is not None]
    assert lons == [-77.0, -77.03]  # "-77." shows -77, never disappears


async def test_invalid_json_and_upstream_errors_are_typed() -> None:
    items: list[Any] = []
    errors: list[Exception] = []
    rxchat.from_chunks(_script(['{"name": "Ro', 'me"}}'])).pipe(
        ops.partial_objects(City)
    ).subscribe(items.append, errors.append)
    assert [p.name for p in items] == ["Ro", "Rome"]
    (err,) = errors
    assert isinstance(err, rxchat.RxChatError) and "}" in str(err)
    assert getattr(err, "completion", None) is not None
    with pytest.raises(TypeError):
        ops.partial_objects(dict)  # type: ignore[type-var]


async def test_choice_index_and_refusals() -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "refusal": "No."}}]},
        {"choices": [{"index": 1, "delta": {"role": "assistant", "content": '{"name": "Oslo"}'}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [{"index": 1, "delta": {}, "finish_reason": "stop"}]},
    ]
    first = await rxchat.from_chunks(chunks).pipe(ops.partial_objects(City), rops.to_list())
    second = await rxchat.from_chunks(chunks).pipe(
        ops.partial_objects(City, choice_index=1), rops.to_list()
    )
    assert first == [] and [p.name for p in second] == ["Oslo"]
