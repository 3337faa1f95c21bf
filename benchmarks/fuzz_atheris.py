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
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["rxchat"]):
    from pydantic import BaseModel

    from rxchat._decode import ChunkDecoder
    from rxchat._fastbuild import c_builder, models_identical
    from rxchat._parsing import pydantic_function_tool
    from rxchat._state import ChatCompletionStreamState
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


def _run(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cuts = sorted(fdp.ConsumeIntInRange(0, 1 << 16) for _ in range(fdp.ConsumeIntInRange(0, 4)))
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    text = body.decode("utf-8", "replace")
    _check_reader(text)
    for line in text.splitlines():
        if line.startswith("data: "):
            _check_reader(line[6:])
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
