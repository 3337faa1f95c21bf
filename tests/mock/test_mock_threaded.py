"""The mock server on its own thread (ThreadedMockServer, serve_in_thread) and scripted answers."""

from __future__ import annotations

import asyncio
import threading

import openai
import pytest

import rxchat
from rxchat.mock import OptionError, ThreadedMockServer, serve_in_thread

USER = [{"role": "user", "content": "Hello"}]


def _text(client: rxchat.Client, model: str = "gpt-4o") -> str:
    completion = client.chat.completions.create(model=model, messages=USER)
    return completion.choices[0].message.content or ""


def test_serve_in_thread_serves_sync_code_without_a_loop() -> None:
    with serve_in_thread() as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        assert url.server.url == url
        with rxchat.Client(base_url=url, api_key="sk-unused") as client:
            chunks = list(client.chat.completions.create(model="mock", messages=USER, stream=True))
        assert chunks[-1].finish_reason == "stop"
        assert len(url.server.requests) == 1 and url.server.completed == 1
        thread = next(t for t in threading.enumerate() if t.name == "rxchat-mock-server")
    assert not thread.is_alive(), "the server's thread ends with the block"


def test_the_openai_sdk_unchanged() -> None:
    with serve_in_thread() as url:
        client = openai.OpenAI(base_url=url, api_key="sk-unused", max_retries=0)
        stream = client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)  # type: ignore[arg-type]
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        client.close()
        assert text == url.server.streams[0].texts[0]


def test_scripted_answers_are_taken_in_order_then_the_usual_answer() -> None:
    with ThreadedMockServer() as server, rxchat.Client(base_url=server.url, api_key="k") as client:
        server.script("First answer.", {"text": "Second, slowly.", "delay": 0.001})
        assert server.pending_answers == 2
        assert _text(client) == "First answer."
        assert _text(client) == "Second, slowly."
        assert server.pending_answers == 0
        usual = _text(client)
        assert usual and usual not in ("First answer.", "Second, slowly.")
        assert [r.body["model"] for r in server.requests] == ["gpt-4o"] * 3, "requests unchanged"


def test_scripted_faults_reach_the_client_as_typed_errors() -> None:
    with ThreadedMockServer() as server:
        client = rxchat.Client(base_url=server.url, api_key="k", max_retries=0)
        server.script({"status": 429, "retry_after": "0"}, {"drop_after": 2, "tokens": 10})
        with pytest.raises(rxchat.RateLimitError):
            _text(client)
        stream = client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
        got = []
        with pytest.raises(rxchat.APIConnectionError):
            for chunk in stream:
                got.append(chunk)
        assert len(got) == 2
        assert server.streams[-1].outcome == "dropped"
        client.close()


def test_retries_see_the_script_one_answer_per_attempt() -> None:
    with ThreadedMockServer() as server:
        server.script({"status": 503, "retry_after": "0"}, "After one retry.")
        with rxchat.Client(base_url=server.url, api_key="k", max_retries=2) as client:
            assert _text(client) == "After one retry."
        assert len(server.requests) == 2


def test_set_options_apply_to_every_request_and_answers_win() -> None:
    with ThreadedMockServer() as server, rxchat.Client(base_url=server.url, api_key="k") as client:
        server.set_options(text="Always this.")
        assert _text(client) == "Always this."
        server.script({"text": "Once that."})
        assert _text(client) == "Once that."
        assert _text(client) == "Always this."
        server.reset()
        assert _text(client) != "Always this."


def test_script_wins_over_the_clients_own_mock_options() -> None:
    with ThreadedMockServer() as server, rxchat.Client(base_url=server.url, api_key="k") as client:
        server.script("Scripted.")
        assert _text(client, model="mock?text=From%20the%20client") == "Scripted."
        assert _text(client, model="mock?text=From%20the%20client") == "From the client"


def test_bad_scripts_fail_at_once_in_the_test() -> None:
    with ThreadedMockServer() as server:
        with pytest.raises(OptionError, match="drop_aftr"):
            server.script({"drop_aftr": 3})
        with pytest.raises(OptionError, match="tokens"):
            server.set_options(tokens="many")
        with pytest.raises(TypeError):
            server.script({"text": ["not", "a", "str"]})
        assert server.pending_answers == 0


def test_blocking_waits_and_lifecycle() -> None:
    server = ThreadedMockServer(token_delay=0.01)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    url = server.start()
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
    with rxchat.Client(base_url=url, api_key="k") as client:
        stream = client.chat.completions.create(
            model="mock?tokens=1000", messages=USER, stream=True
        )
        next(iter(stream))
        stream.close()
    record = server.wait_for_disconnect(timeout=5)
    assert record.chunks >= 1
    server.wait_for_idle(timeout=5)
    server.close()
    server.close()  # idempotent


def test_an_api_key_is_required_when_set() -> None:
    with serve_in_thread(api_key="sk-right") as url:
        with rxchat.Client(base_url=url, api_key="sk-wrong", max_retries=0) as client:
            url.server.script("never taken")
            with pytest.raises(rxchat.AuthenticationError):
                _text(client)
        assert url.server.pending_answers == 1, "a refused request takes no scripted answer"


async def test_usable_from_async_tests_too() -> None:
    with serve_in_thread() as url:
        url.server.script("From an async test.")
        async with rxchat.AsyncClient(base_url=url, api_key="k") as client:
            completion = await client.chat.completions.create(model="gpt-4o", messages=USER)
        assert completion.choices[0].message.content == "From an async test."
        await asyncio.sleep(0)
