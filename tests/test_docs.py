"""The documentation is true: every ```python block runs, every link resolves, every page is reachable.

Every ```python block of the README, of CONTRIBUTING.md and of every page below docs/
(recursively) is a complete program — the examples start the embedded mock server themselves —
and runs in a fresh interpreter, in a temporary directory, with warnings as errors, and must exit
0 within the time limit. Blocks that are deliberately not programs (signature listings, marble diagrams) use a
```text or ```pycon fence instead.

The blocks run in parallel on a few worker threads, every block still its own test. To save the
~0.5 s of imports per block, each worker forks the blocks from a "zygote" interpreter that has
imported the heavy dependencies once (see ``ZYGOTE``); ``RXCHAT_DOCS_FRESH=1`` starts a brand-new
interpreter per block instead.
"""

from __future__ import annotations

import json
import os
import queue
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import rxchat.operators

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.rglob("*.md"))]
LINKED_PAGES = [*PAGES, ROOT / "benchmarks" / "README.md"]

FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
ANY_FENCE = re.compile(r"^```(\S*)[^\n]*\n.*?^```", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)

BLOCK_TIMEOUT = 50.0  # seconds for one block, interpreter start-up included
# Blocks mostly wait (on the mock server's pacing, on timeouts): a few more workers than CPUs.
WORKERS = 4
# The blocks must not reach a real API because of the developer's environment.
SCRUBBED_ENV = ("RXCHAT_BASE_URL", "OPENAI_BASE_URL", "RXCHAT_API_KEY", "OPENAI_API_KEY")


@dataclass(frozen=True)
class Block:
    where: str  # "docs/page.md:LINE"
    code: str


def _blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(f"{page.relative_to(ROOT)}:{line}", match.group(1)))
    return found


BLOCKS = _blocks()
BY_WHERE = {block.where: block for block in BLOCKS}


@dataclass(frozen=True)
class Outcome:
    returncode: int | None  # None: timed out
    stdout: str
    stderr: str


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run_fresh(block: Block) -> Outcome:
    """The block in a brand-new interpreter (``python -W error example.py``)."""
    with tempfile.TemporaryDirectory(prefix="rxchat-doc-") as tmp:
        script = Path(tmp) / "example.py"
        script.write_text(block.code, encoding="utf-8")
        try:
            result = subprocess.run(
                [sys.executable, "-W", "error", str(script)],
                cwd=tmp,
                env=_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            out = err.stdout.decode(errors="replace") if isinstance(err.stdout, bytes) else ""
            errs = err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else ""
            return Outcome(None, out, errs)
    return Outcome(result.returncode, result.stdout, result.stderr)


# Most of a block's run is the interpreter importing aiohttp, pydantic and reactivex (~0.5 s of
# CPU). A "zygote" interpreter, started with the same options, imports them once and forks a
# child per block: the child runs the block as __main__ from a fresh module namespace, with its
# own working directory, stdin, stdout and stderr, and exits through the normal interpreter
# shutdown (atexit handlers, finalizers, warnings as errors), as `python example.py` would.
# The zygote starts no thread before forking. RXCHAT_DOCS_FRESH=1 runs each block in a new
# interpreter instead.
ZYGOTE = r"""
import json, os, sys, types
import asyncio, aiohttp, aiohttp.web, pydantic, reactivex, rxchat, rxchat.mock, rxchat.operators


def run(job):
    os.chdir(job["cwd"])
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        os.dup2(os.open(job[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
    script = job["script"]
    sys.argv = [script]
    sys.path[0] = os.path.dirname(script)
    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    with open(script, encoding="utf-8") as f:
        code = compile(f.read(), script, "exec")
    exec(code, main.__dict__)


for line in sys.stdin:
    job = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        run(job)
        break  # leave the loop: the child shuts down like any finished program
    print("pid", pid, flush=True)
    print("status", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class _Zygote:
    """One zygote process; runs one block at a time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-W", "error", "-c", ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
            cwd=tempfile.gettempdir(),
            bufsize=0,
        )
        self.pending = b""

    def _line(self, deadline: float | None) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
            data = os.read(fd, 4096)
            if not data:
                assert self.proc.stderr is not None
                raise RuntimeError(f"the zygote died: {self.proc.stderr.read().decode()[-3000:]}")
            self.pending += data
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode()

    def run(self, block: Block) -> Outcome:
        assert self.proc.stdin is not None
        with tempfile.TemporaryDirectory(prefix="rxchat-doc-") as tmp:
            job = {name: str(Path(tmp) / name) for name in ("stdout", "stderr")}
            job |= {"cwd": tmp, "script": str(Path(tmp) / "example.py")}
            Path(job["script"]).write_text(block.code, encoding="utf-8")
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            pid = int(self._line(time.monotonic() + BLOCK_TIMEOUT).split()[1])
            try:
                returncode: int | None = int(
                    self._line(time.monotonic() + BLOCK_TIMEOUT).split()[1]
                )
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)  # the block's own process, forked for this run
                self._line(None)
                returncode = None
            out, err = (
                Path(job[name]).read_text(encoding="utf-8", errors="replace")
                for name in ("stdout", "stderr")
            )
            return Outcome(returncode, out, err)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class _Runner:
    """Runs blocks on ``WORKERS`` threads, each with its own zygote (or fresh interpreters)."""

    def __init__(self) -> None:
        self.fresh = not hasattr(os, "fork") or os.environ.get("RXCHAT_DOCS_FRESH") == "1"
        self.idle: queue.SimpleQueue[_Zygote] = queue.SimpleQueue()
        self.zygotes: list[_Zygote] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="doc-block")

    def _run(self, block: Block) -> Outcome:
        if self.fresh:
            return _run_fresh(block)
        try:
            zygote = self.idle.get_nowait()
        except queue.Empty:
            zygote = _Zygote()
            with self.lock:
                self.zygotes.append(zygote)
        try:
            return zygote.run(block)
        finally:
            self.idle.put(zygote)

    def submit(self, block: Block) -> Future[Outcome]:
        return self.pool.submit(self._run, block)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for zygote in self.zygotes:
            zygote.close()


@pytest.fixture(scope="module")
def docs_redis() -> Iterator[None]:
    """A redis-server for the stream log examples (docs/scale-out.md), named by $REDIS_URL."""
    from _redis_support import RedisServer

    server = RedisServer()
    server.start()
    previous = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = server.url  # read by _env() for every block
    try:
        yield
    finally:
        if previous is None:
            del os.environ["REDIS_URL"]
        else:
            os.environ["REDIS_URL"] = previous
        server.stop()


@pytest.fixture(scope="module")
def block_runs(
    request: pytest.FixtureRequest, docs_redis: None
) -> Iterator[dict[str, Future[Outcome]]]:
    """Start every selected block at once on a small pool; each test waits for its own."""
    selected = [
        item.callspec.params["where"]
        for item in request.session.items
        if getattr(item, "function", None) is test_code_block_runs and hasattr(item, "callspec")
    ]
    runner = _Runner()
    try:
        yield {where: runner.submit(BY_WHERE[where]) for where in selected}
    finally:
        runner.close()


@pytest.mark.parametrize("where", list(BY_WHERE))
def test_code_block_runs(where: str, block_runs: dict[str, Future[Outcome]]) -> None:
    future = block_runs.get(where)
    outcome = future.result() if future is not None else _run_fresh(BY_WHERE[where])
    output = f"--- stdout\n{outcome.stdout[-3000:]}\n--- stderr\n{outcome.stderr[-3000:]}"
    if outcome.returncode is None:
        pytest.fail(f"{where} did not finish in {BLOCK_TIMEOUT:g} s\n{output}", pytrace=False)
    if outcome.returncode != 0:
        pytest.fail(f"{where} exited with status {outcome.returncode}\n{output}", pytrace=False)


def test_every_page_has_runnable_examples() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    expected = {
        "docs/concepts/sse-decoding.md",
        "docs/concepts/wire-types.md",
        "docs/concepts/errors.md",
        "docs/concepts/sources-and-scheduling.md",
        "docs/concepts/events.md",
        "docs/concepts/fan-out.md",
        "docs/concepts/cancellation.md",
        "docs/recipes.md",
        "docs/clients.md",
        "docs/coming-from-sdks.md",
        "docs/transport.md",
        "docs/mock-server.md",
        "docs/reliability.md",
        "docs/getting-started.md",
        "docs/scale-out.md",
    }
    assert expected <= names
    pages_with_blocks = {b.where.rsplit(":", 1)[0] for b in BLOCKS}
    for name in [*expected - {"docs/reliability.md"}, "README.md"]:
        assert name in pages_with_blocks, f"{name} has no ```python example"
    for page in (DOCS / "operators").glob("*.md"):
        assert page.relative_to(ROOT).as_posix() in pages_with_blocks, page.name
    assert len(BLOCKS) >= 55


def test_only_runnable_python_fences() -> None:
    """Python-looking code is either a ```python block (run) or explicitly not a program."""
    not_run = {"", "text", "pycon", "bash", "console", "json", "toml"}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in ANY_FENCE.finditer(text):
            info = match.group(1)
            assert info == "python" or info in not_run, (
                f"{page.relative_to(ROOT)}: fence ```{info}: use ```python (it will be run) "
                "or ```text / ```pycon for something that is not a program"
            )


def test_every_operator_has_a_page() -> None:
    pages = {p.stem: p.read_text(encoding="utf-8") for p in (DOCS / "operators").glob("*.md")}
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for name in rxchat.operators.__all__:
        owners = [
            stem
            for stem, text in pages.items()
            if text.startswith("#") and name in text.splitlines()[0]
        ]
        assert owners, f"no docs/operators page has ops.{name} in its title"
        assert f"operators/{owners[0]}.md" in index, f"docs/index.md does not link {owners[0]}.md"


def test_readme_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    fence = lines.index("```bash")
    assert lines[fence + 1].startswith('pip install -e ".[rich]" && rxchat demo')
    assert lines[fence + 2].startswith('pip install -e ".[test]" && python -m pytest -q')


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = ANY_FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(h) for h in HEADING.findall(text)}


def _local_links(page: Path) -> Iterator[tuple[str, Path, str]]:
    text = ANY_FENCE.sub("", page.read_text(encoding="utf-8"))
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        yield target, (page.parent / path).resolve() if path else page, anchor


def test_relative_links_resolve() -> None:
    for page in LINKED_PAGES:
        for target, path, anchor in _local_links(page):
            name = page.relative_to(ROOT)
            assert path.exists(), f"{name}: broken link {target}"
            if anchor and path.suffix == ".md":
                assert anchor in _anchors(path), f"{name}: no heading for #{anchor} in {target}"


def test_every_page_is_reachable_from_the_readme() -> None:
    seen: set[Path] = set()
    todo = [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        for _, path, _ in _local_links(page):
            if path.suffix == ".md" and path.is_file() and path not in seen:
                todo.append(path)
    unreachable = [p.relative_to(ROOT).as_posix() for p in LINKED_PAGES if p not in seen]
    assert not unreachable, f"not reachable from README.md: {unreachable}"
    index = (DOCS / "index.md").resolve()
    linked_from_index = {path for _, path, _ in _local_links(index)}
    for page in LINKED_PAGES:
        if page.resolve() not in (index, (ROOT / "README.md").resolve()):
            name = page.relative_to(ROOT)
            assert page.resolve() in linked_from_index, f"docs/index.md does not link {name}"
