"""Testing an application against rxchat's mock with the pytest plugin installed with rxchat.

Nothing to configure: installing rxchat gives pytest the ``rxchat_mock`` fixtures (a mock server
on its own thread per test, so plain synchronous tests work) and the ``rxchat_mock`` marker.

Run: ``python -m pytest examples/test_support_bot.py``.
"""

from __future__ import annotations

import pytest
from support_bot import answer

import rxchat
from rxchat.mock import ThreadedMockServer


@pytest.mark.rxchat_mock("Open Settings, then choose Reset password.")
def test_the_reply_is_returned(rxchat_mock_env: ThreadedMockServer) -> None:
    assert answer("How do I reset my password?") == "Open Settings, then choose Reset password."
    (request,) = rxchat_mock_env.requests
    assert request.body["messages"][1] == {"role": "user", "content": "How do I reset my password?"}
    assert request.body["stream"] is True


@pytest.mark.rxchat_mock({"status": 429, "retry_after": "0"}, "Back after a rate limit.")
def test_a_rate_limit_is_retried(rxchat_mock_env: ThreadedMockServer) -> None:
    assert answer("Hi") == "Back after a rate limit."
    assert len(rxchat_mock_env.requests) == 2


def test_a_dropped_connection_keeps_the_partial_reply(rxchat_mock_env: ThreadedMockServer) -> None:
    # The connection drops after 4 chunks: the role chunk, then "One", " two", " three".
    rxchat_mock_env.script({"text": "One two three four five six", "drop_after": 4})
    reply = answer("Count")
    assert reply.endswith(" [connection lost]")
    assert reply.removesuffix(" [connection lost]") == "One two three"


def test_nothing_received_is_an_error(rxchat_mock_env: ThreadedMockServer) -> None:
    rxchat_mock_env.script({"drop_after": 0}, {"drop_after": 0}, {"drop_after": 0})
    with pytest.raises(rxchat.APIConnectionError):
        answer("Anyone there?")


def test_with_an_explicit_client(rxchat_mock_url: str, rxchat_mock: ThreadedMockServer) -> None:
    rxchat_mock.set_options(text="Same answer every time.")
    with rxchat.Client(base_url=rxchat_mock_url, api_key="sk-test") as client:
        assert answer("a", client=client) == answer("b", client=client) == "Same answer every time."
