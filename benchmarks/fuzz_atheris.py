"""Coverage-guided fuzzing of the decoders and the stream state with atheris (outside CI).

Each input is split (by the fuzzer) into socket reads, decoded by ``ChunkDecoder`` (which runs
the SSE decoder), and the chunks are accumulated by three ``ChatCompletionStreamState``s: plain,
with a structured ``response_format``, and with strict tools. Anything raised that is not an
``rxchat.RxChatError`` is a crash. Each ``data:`` line of the input (and the whole input) is also
read by the C chunk reader (``rxchat._speedups``) and by pydantic: a model the reader builds must
be the one pydantic builds, and what pydantic rejects the reader must leave to it. The seed corpus is the recorded traffic in
``tests/fixtures/openai`` plus a few hand-made bodies.

Usage::

    pip install -e ".[fuzz]"
    python benchmarks/fuzz_atheris.py -runs=200000
    python benchmarks/fuzz_atheris.py -max_total_time=600 CORPUS_DIR

libFuzzer ends a clean run with "Done N runs" and exit status 0; a crash prints the Python
traceback, writes a ``crash-*`` file with the input, and exits non-zero.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["rxchat"]):
    from pydantic import BaseModel

    from rxchat._c_builder import c_builder, models_identical
    from rxchat._chunk_decoder import ChunkDecoder
    from rxchat._state import ChatCompletionStreamState
    from rxchat._structured import pydantic_function_tool
    from rxchat.errors import RxChatError
    from rxchat.types import ChatCompletionChunk

C_BUILD = c_builder()
VALIDATE = ChatCompletionChunk.__pydantic_validator__.validate_json


class Location(BaseModel):
    city: str
    n: int = 0


TOOLS = [pydantic_function_tool(Location)]
SEEDS = [
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
    b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","type":"function",'
    b'"function":{"name":"Location","arguments":"{\\"city\\": \\"Pa"}}]}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n',
    b'event: error\ndata: {"error":{"message":"boom"}}\n\n',
    b": keep-alive\r\n\r\ndata: [DONE]\r\n\r\n",
    b'data: {"created":' + b"9" * 4301 + b',"choices":[]}\n\n',
    b'data: {"choices":[],"usage":{"prompt_tokens":-' + b"1" * 4300 + b"}}\n\n",
]

examples = 0
crashes = 0


def one_input(data: bytes) -> None:
    global examples, crashes
    examples += 1
    if examples % 50_000 == 0:
        print(f"rxchat atheris: {examples} examples, crashes = {crashes}", flush=True)
    try:
        _run(data)
    except BaseException:
        crashes += 1
        raise


def _check_reader(payload: str) -> None:
    if C_BUILD is None:
        return
    fast = C_BUILD([payload])[0]
    try:
        expected = VALIDATE(payload)
    except ValueError:  # pydantic's ValidationError
        assert fast is None, payload
        return
    assert fast is None or models_identical(fast, expected), payload


# Integer literal lengths around Python's int-string conversion limit (4,300 digits) and the
# C reader's own cut-off (18 characters): the first integer of each input is also tried at one.
BIG_SIZES = (18, 19, 20, 4299, 4300, 4301, 4302, 10_000)
_DIGITS = re.compile(r"\d+")


def _with_long_integer(text: str, size: int) -> str | None:
    match = _DIGITS.search(text)
    if match is None:
        return None
    return text[: match.start()] + "9" * size + text[match.end() :]


def _run(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cuts = sorted(fdp.ConsumeIntInRange(0, 1 << 16) for _ in range(fdp.ConsumeIntInRange(0, 4)))
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    text = body.decode("utf-8", "replace")
    _check_reader(text)
    for line in text.splitlines():
        if line.startswith("data: "):
            _check_reader(line[6:])
            long_form = _with_long_integer(line[6:], BIG_SIZES[len(body) % len(BIG_SIZES)])
            if long_form is not None:
                _check_reader(long_form)
                _decode_all(("data: " + long_form + "\n\n").encode())
    _decode_stream(body, cuts)


def _decode_all(body: bytes) -> None:
    """A body decoded in one read: only rxchat errors may come out."""
    decoder = ChunkDecoder()
    try:
        decoder.feed(body)
        if decoder.error is None and not decoder.done:
            decoder.close()
    except RxChatError:
        pass


def _decode_stream(body: bytes, cuts: list[int]) -> None:
    edges = [0, *[c % (len(body) + 1) for c in cuts], len(body)]
    decoder = ChunkDecoder(max_event_bytes=None if len(body) % 3 else 64)
    chunks = []
    try:
        for a, b in itertools.pairwise(edges):
            chunks += decoder.feed(body[a:b])
            if decoder.error is not None or decoder.done:
                break
        else:
            decoder.close()
    except RxChatError:
        pass
    for state in (
        ChatCompletionStreamState(),
        ChatCompletionStreamState(response_format=Location),
        ChatCompletionStreamState(tools=TOOLS),
    ):
        try:
            for chunk in chunks:
                for event in state.handle_chunk(chunk):
                    _ = getattr(event, "parsed", None), getattr(event, "parsed_arguments", None)
            state.get_final_completion()
        except RxChatError:
            pass


def _seed_dir() -> str:
    folder = tempfile.mkdtemp(prefix="rxchat-fuzz-")
    corpus = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "openai")
    seeds = list(SEEDS)
    if os.path.isdir(corpus):
        for name in sorted(os.listdir(corpus)):
            if name.endswith(".sse"):
                with open(os.path.join(corpus, name), "rb") as f:
                    seeds.append(f.read())
    for i, seed in enumerate(seeds):
        with open(os.path.join(folder, f"seed{i}"), "wb") as f:
            f.write(b"\x00\x00" + seed)  # no cuts, then the body
    return folder


def main() -> None:
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv.append(_seed_dir())
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
