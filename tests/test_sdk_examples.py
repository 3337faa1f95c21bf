"""The code examples of the Dedalus streaming guide and the Edgee ``stream()`` reference, run
against the embedded mock server with only the import changed.

Each test body is the published example, with ``from dedalus_labs import Dedalus`` (or
``from edgee import Edgee``) replaced by the rxchat import below. The base URL comes from
``RXCHAT_BASE_URL`` (set to the mock by a fixture), as it would for a local server; what the
examples print is captured and checked against what the mock server sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Literal

import pytest
from pydantic import BaseModel
from support import ThreadedMock

# -- the only lines that differ from the published examples ---------------------------------
from rxchat import (
    APIConnectionError,
    APITimeoutError,
    ChatCompletionStreamState,
    InputObject,
    LengthFinishReasonError,
    pydantic_function_tool,
)
from rxchat import AsyncClient as AsyncDedalus
from rxchat import Client as Dedalus
from rxchat import Client as Edgee

# --------------------------------------------------------------------------------------------
from rxchat.mock import MockServer


@pytest.fixture
def mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedMock]:
    m = ThreadedMock()
    monkeypatch.setenv("RXCHAT_BASE_URL", m.url)
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
async def amock(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MockServer]:
    async with MockServer() as server:
        monkeypatch.setenv("RXCHAT_BASE_URL", server.url)
        yield server


def _texts(server: MockServer) -> list[str]:
    return [s.texts[0] for s in server.streams]


# == Dedalus streaming guide =================================================================


def test_dedalus_basic_streaming_sync(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    client = Dedalus(api_key="your-api-key")

    stream = client.chat.completions.create(
        model="gpt-4",
        messages=[{"role": "user", "content": "Write a short story"}],
        stream=True,
    )

    for chunk in stream:
        if chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)

    assert capsys.readouterr().out == _texts(mock.server)[0]


async def test_dedalus_basic_streaming_async(
    amock: MockServer, capsys: pytest.CaptureFixture[str]
) -> None:
    client = AsyncDedalus(api_key="your-api-key")

    stream = await client.chat.completions.create(
        model="gpt-4",
        messages=[{"role": "user", "content": "Write a short story"}],
        stream=True,
    )

    async for chunk in stream:
        if chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)

    assert capsys.readouterr().out == _texts(amock)[0]


def test_dedalus_readme_streaming_ids(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    client = Dedalus()

    stream = client.chat.completions.create(
        model="openai/gpt-5-nano",
        stream=True,
        messages=[
            {
                "role": "system",
                "content": "You are Stephen Dedalus. Respond in morose Joycean malaise.",
            },
            {
                "role": "user",
                "content": "What do you think of artificial intelligence?",
            },
        ],
    )
    for chat_completion in stream:
        print(chat_completion.id)

    ids = capsys.readouterr().out.split()
    assert len(ids) > 2 and len(set(ids)) == 1 and ids[0].startswith("chatcmpl-")


def test_dedalus_context_manager_get_final_completion(
    mock: ThreadedMock, capsys: pytest.CaptureFixture[str]
) -> None:
    # The guide iterates the event stream as if it yielded chunks (``chunk.choices[0]``), which
    # raises AttributeError with the Dedalus SDK too; the chunk is ``event.chunk`` of the
    # ``chunk`` events. Otherwise this is the guide's code.
    client = Dedalus(api_key="your-api-key")

    with client.chat.completions.stream(
        model="gpt-4",
        messages=[{"role": "user", "content": "Say hello there!"}],
    ) as stream:
        for event in stream:
            if event.type == "chunk" and event.chunk.choices[0].delta.content:
                print(event.chunk.choices[0].delta.content, end="")

        # Get the final accumulated completion
        completion = stream.get_final_completion()
        print(f"\n\nFull response: {completion.choices[0].message.content}")

    text = _texts(mock.server)[0]
    assert capsys.readouterr().out == f"{text}\n\nFull response: {text}\n"


def test_dedalus_guide_verbatim_iteration_fails_like_the_sdk(mock: ThreadedMock) -> None:
    client = Dedalus(api_key="your-api-key")
    with client.chat.completions.stream(
        model="gpt-4", messages=[{"role": "user", "content": "Say hello there!"}]
    ) as stream, pytest.raises(AttributeError, match="choices"):
        for chunk in stream:
            if chunk.choices[0].delta.content:  # type: ignore[union-attr]
                print(chunk.choices[0].delta.content, end="")  # type: ignore[union-attr]
    assert stream.closed


async def test_dedalus_context_manager_async(
    amock: MockServer, capsys: pytest.CaptureFixture[str]
) -> None:
    client = AsyncDedalus(api_key="your-api-key")

    async with client.chat.completions.stream(
        model="gpt-4",
        messages=[{"role": "user", "content": "Say hello there!"}],
    ) as stream:
        async for event in stream:
            if event.type == "content.delta":
                print(event.delta, end="")

        # Get the final accumulated completion
        completion = await stream.get_final_completion()
        print(f"\n\nFull response: {completion.choices[0].message.content}")

    text = _texts(amock)[0]
    assert capsys.readouterr().out == f"{text}\n\nFull response: {text}\n"
    await client.close()


class Location(BaseModel):
    city: str
    temperature: float
    units: Literal["c", "f"]


def test_dedalus_structured_output_streaming(
    mock: ThreadedMock, capsys: pytest.CaptureFixture[str]
) -> None:
    client = Dedalus(api_key="your-api-key")

    with client.chat.completions.stream(
        model="gpt-4",
        messages=[{"role": "user", "content": "What's the weather in SF?"}],
        response_format=Location,
    ) as stream:
        for event in stream:
            # Stream events include type information
            print(f"Event type: {event.type}")

        completion = stream.get_final_completion()

        location = completion.choices[0].message.parsed
        print(f"City: {location.city}")
        print(f"Temperature: {location.temperature}°{location.units}")

    out = capsys.readouterr().out
    assert isinstance(location, Location)
    assert Location.model_validate_json(_texts(mock.server)[0]) == location
    assert "Event type: content.delta" in out and "Event type: content.done" in out
    assert f"City: {location.city}\n" in out
    body = mock.server.requests[-1].body
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["name"] == "Location"


def test_dedalus_typed_events(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    client = Dedalus(api_key="your-api-key")
    parsed_partials: list[object] = []

    with client.chat.completions.stream(
        model="gpt-4",
        messages=[{"role": "user", "content": "What's the weather in SF?"}],
        response_format=Location,
    ) as stream:
        for event in stream:
            if event.type == "content.delta":
                print(event.delta, end="", flush=True)
                if event.parsed is not None:
                    parsed_partials.append(event.parsed)
            elif event.type == "content.done":
                print("\nContent complete:", event.parsed)
            elif event.type == "refusal.done":
                print("Model refused:", event.refusal)

    out = capsys.readouterr().out
    text = _texts(mock.server)[0]
    final = Location.model_validate_json(text)
    assert out == f"{text}\nContent complete: {final}\n"
    assert parsed_partials and parsed_partials[-1] == final.model_dump()


def test_dedalus_typed_events_refusal(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    client = Dedalus(api_key="your-api-key")

    with client.chat.completions.stream(
        model="gpt-4",
        messages=[{"role": "user", "content": "How do I make anthrax?"}],
        response_format=Location,
    ) as stream:
        for event in stream:
            if event.type == "refusal.delta":
                print(event.delta, end="", flush=True)
            elif event.type == "refusal.done":
                print("\nModel refused:", event.refusal)
            elif event.type == "content.done":
                print("Content complete:", event.parsed)

        completion = stream.get_final_completion()

    refusal = _texts(mock.server)[0]
    assert capsys.readouterr().out == f"{refusal}\nModel refused: {refusal}\n"
    assert completion.choices[0].message.refusal == refusal
    assert completion.choices[0].message.parsed is None


class GetWeather(BaseModel):
    city: str
    country: str


def test_dedalus_tool_call_streaming(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    client = Dedalus(api_key="your-api-key")

    with client.chat.completions.stream(
        model="gpt-4",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[
            pydantic_function_tool(
                GetWeather, name="get_weather", description="Get the current weather in a city"
            )
        ],
    ) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.delta":
                print(event.arguments_delta, end="")
            elif event.type == "tool_calls.function.arguments.done":
                print(f"\nTool: {event.name}")
                print(f"Arguments: {event.parsed_arguments}")

        completion = stream.get_final_completion()

    tool_call = completion.choices[0].message.tool_calls[0]
    args = tool_call.function.parsed_arguments
    assert isinstance(args, GetWeather)
    out = capsys.readouterr().out
    assert out == f"{tool_call.function.arguments}\nTool: get_weather\nArguments: {args}\n"
    sent = mock.server.requests[-1].body["tools"][0]["function"]
    assert sent["name"] == "get_weather" and sent["strict"] is True
    assert sent["parameters"]["additionalProperties"] is False
    assert completion.choices[0].finish_reason == "tool_calls"


def test_dedalus_manual_accumulation(mock: ThreadedMock) -> None:
    client = Dedalus(api_key="your-api-key")
    state = ChatCompletionStreamState()

    stream = client.chat.completions.create(
        model="gpt-4",
        messages=[{"role": "user", "content": "Write a short story"}],
        stream=True,
    )
    snapshots = []
    for chunk in stream:
        state.handle_chunk(chunk)
        # the accumulated completion is available mid-stream
        snapshots.append(state.current_completion_snapshot.choices[0].message.content)

    completion = state.get_final_completion()
    text = _texts(mock.server)[0]
    assert completion.choices[0].message.content == text == snapshots[-1]
    assert all(text.startswith(s or "") for s in snapshots)


def test_dedalus_length_finish_reason(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    client = Dedalus(api_key="your-api-key")

    try:
        with client.chat.completions.stream(
            model="gpt-4",
            messages=[{"role": "user", "content": "Write a long essay"}],
            max_tokens=1,
            response_format=Location,
        ) as stream:
            for _event in stream:
                pass
    except LengthFinishReasonError as e:
        print(f"Response truncated: {e.completion.choices[0].message.content!r}")

    first_piece = _texts(mock.server)[0]
    assert capsys.readouterr().out == f"Response truncated: {first_piece!r}\n"
    assert mock.server.requests[-1].body["max_tokens"] == 1


def test_dedalus_length_without_response_format(mock: ThreadedMock) -> None:
    # Without parseable input the events run to the end; get_final_completion raises, as in the SDKs.
    client = Dedalus(api_key="your-api-key")
    with client.chat.completions.stream(
        model="gpt-4", messages=[{"role": "user", "content": "Write a long essay"}], max_tokens=1
    ) as stream:
        types = [event.type for event in stream]
        assert "content.done" in types
        with pytest.raises(LengthFinishReasonError) as info:
            stream.get_final_completion()
    assert info.value.completion is not None
    assert info.value.completion.choices[0].finish_reason == "length"


def test_dedalus_connection_errors_and_timeouts(
    mock: ThreadedMock, capsys: pytest.CaptureFixture[str]
) -> None:
    client = Dedalus(api_key="your-api-key", base_url="http://127.0.0.1:9/v1", max_retries=0)
    try:
        with client.chat.completions.stream(
            model="gpt-4", messages=[{"role": "user", "content": "Hello"}]
        ) as stream:
            for _event in stream:
                pass
    except APITimeoutError:
        print("Request timed out")
    except APIConnectionError:
        print("Connection failed")

    client = Dedalus(api_key="your-api-key", timeout=0.2, max_retries=0)
    try:
        with client.chat.completions.stream(
            model="gpt-4?stall_first=2", messages=[{"role": "user", "content": "Hello"}]
        ) as stream:
            for _event in stream:
                pass
    except APITimeoutError:
        print("Request timed out")
    except APIConnectionError:
        print("Connection failed")

    try:
        client.with_options(timeout=0.1).chat.completions.create(
            model="gpt-4?stall_headers=2", messages=[{"role": "user", "content": "Hello"}]
        )
    except APITimeoutError:
        print("Request timed out")

    assert capsys.readouterr().out == "Connection failed\nRequest timed out\nRequest timed out\n"


# == Edgee stream() reference ================================================================


def test_edgee_string_input(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    edgee = Edgee("your-api-key")

    for chunk in edgee.stream("gpt-4o", "Tell me a story"):
        if chunk.text:
            print(chunk.text, end="", flush=True)

        if chunk.finish_reason:
            print(f"\nFinished: {chunk.finish_reason}")
    # Equivalent to: input={"messages": [{"role": "user", "content": "Tell me a story"}]}

    assert capsys.readouterr().out == f"{_texts(mock.server)[0]}\nFinished: stop\n"
    assert mock.server.requests[-1].body["messages"] == [
        {"role": "user", "content": "Tell me a story"}
    ]


def test_edgee_dict_input(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    edgee = Edgee("your-api-key")

    for chunk in edgee.stream("gpt-4o", {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a poem about coding"}
        ]
    }):
        if chunk.text:
            print(chunk.text, end="", flush=True)

    assert capsys.readouterr().out == _texts(mock.server)[0]
    assert mock.server.requests[-1].body["messages"][0]["role"] == "system"


def test_edgee_input_object(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    edgee = Edgee("your-api-key")

    input_obj = InputObject(
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a poem about coding"},
        ]
    )
    for chunk in edgee.stream("gpt-4o", input_obj):
        if chunk.text:
            print(chunk.text, end="", flush=True)

    assert capsys.readouterr().out == _texts(mock.server)[0]


def test_edgee_multiple_choices(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    edgee = Edgee("your-api-key")

    for chunk in edgee.stream("gpt-4o", "Give me creative ideas"):
        for choice in chunk.choices:
            if choice.delta.content:
                print(f"Choice {choice.index}: {choice.delta.content}")

    lines = capsys.readouterr().out.splitlines()
    assert "".join(line.removeprefix("Choice 0: ") for line in lines) == _texts(mock.server)[0]


def test_edgee_convenience_properties(mock: ThreadedMock) -> None:
    edgee = Edgee("your-api-key")

    role = None
    full_text = ""
    finish_reason = None
    for chunk in edgee.stream("gpt-4o", "Tell me a story"):
        if chunk.role:
            role = chunk.role
        if chunk.text:
            full_text += chunk.text
        if chunk.finish_reason:
            finish_reason = chunk.finish_reason

    assert (role, full_text, finish_reason) == ("assistant", _texts(mock.server)[0], "stop")


def test_edgee_tools_streaming(mock: ThreadedMock) -> None:
    edgee = Edgee("your-api-key")

    tool_calls: dict[int, dict[str, str]] = {}
    for chunk in edgee.stream("gpt-4o", InputObject(
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[{
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the weather for a location",
                "parameters": {
                    "type": "object",
                    "properties": {"location": {"type": "string"}},
                    "required": ["location"],
                },
            },
        }],
        tool_choice="auto",
    )):
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            entry = tool_calls.setdefault(call.index, {"name": "", "arguments": ""})
            if call.function and call.function.name:
                entry["name"] = call.function.name
            if call.function and call.function.arguments:
                entry["arguments"] += call.function.arguments
        if chunk.finish_reason:
            assert chunk.finish_reason == "tool_calls"

    assert tool_calls[0]["name"] == "get_weather"
    assert "location" in tool_calls[0]["arguments"]


def test_edgee_send_stream_true(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    edgee = Edgee("your-api-key")

    for chunk in edgee.send(model="gpt-4o", input="Tell me a story", stream=True):
        if chunk.text:
            print(chunk.text, end="", flush=True)

    assert capsys.readouterr().out == _texts(mock.server)[0]


def test_edgee_send(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    edgee = Edgee("your-api-key")

    response = edgee.send(
        model="anthropic/claude-haiku-4-5",
        input="What is the capital of France?"
    )

    print(response.text)           # Text content
    print(response.finish_reason)  # Finish reason
    print(response.tool_calls)     # Tool calls (if any)

    if response.usage:
        print(f"Tokens used: {response.usage.total_tokens}")

    if response.compression:
        print(f"Saved tokens: {response.compression.saved_tokens}")

    usage = response.usage
    assert usage is not None
    assert capsys.readouterr().out == (
        f"{response.text}\nstop\nNone\nTokens used: {usage.total_tokens}\n"
    )
    assert response.text and mock.server.requests[-1].body.get("stream") is None


def test_edgee_error_handling(mock: ThreadedMock, capsys: pytest.CaptureFixture[str]) -> None:
    edgee = Edgee("your-api-key")

    try:
        for chunk in edgee.stream("gpt-4o?status=401", "Tell me a story"):
            if chunk.text:
                print(chunk.text, end="", flush=True)
    except Exception as error:
        print(f"Stream failed: {type(error).__name__}")

    assert capsys.readouterr().out == "Stream failed: AuthenticationError\n"
