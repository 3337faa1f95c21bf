"""A small application written with rxchat — the code under test in ``test_support_bot.py``.

``answer()`` streams a reply and returns it; a reply cut off by a dropped connection comes back
with what arrived and a note, instead of an exception. The client is configured from the
environment (``RXCHAT_BASE_URL`` or ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``), as in production.

Run: ``python examples/support_bot.py [BASE_URL]`` (without a URL an embedded mock server is used).
"""

from __future__ import annotations

import os
import sys

import rxchat

SYSTEM = "You are a helpful support agent. Answer in one short paragraph."


def answer(question: str, *, client: rxchat.Client | None = None) -> str:
    """The assistant's reply to ``question``; ``" [connection lost]"`` marks a cut-off reply."""
    own = client is None
    client = client or rxchat.Client(max_retries=2)
    parts: list[str] = []
    try:
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
            stream=True,
        )
        for chunk in stream:
            parts.append(chunk.text or "")
    except (rxchat.APIConnectionError, rxchat.IncompleteStreamError):
        if not parts:
            raise  # nothing arrived: the caller decides
        parts.append(" [connection lost]")
    finally:
        if own:
            client.close()
    return "".join(parts)


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RXCHAT_BASE_URL")
    if url:
        os.environ["RXCHAT_BASE_URL"] = url
        print(answer("How do I reset my password?"))
    else:
        with rxchat.mock.serve_in_thread() as mock_url:
            os.environ["RXCHAT_BASE_URL"] = mock_url
            print(answer("How do I reset my password?"))
