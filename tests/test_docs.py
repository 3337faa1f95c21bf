"""The documentation is true: every ```python block runs, every link resolves, every page is reachable.

Every ```python block of the README and of every page below docs/ (recursively) is a complete
program — the examples start the embedded mock server themselves — and runs in a fresh
interpreter, in a temporary directory, with warnings as errors, and must exit 0 within the time
limit. Blocks that are deliberately not programs (signature listings, marble diagrams) use a
```text or ```pycon fence instead.

The blocks run in parallel on a few worker threads (each one is a subprocess, most of its time
spent starting the interpreter); every block is still its own test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import rxchat.operators

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
LINKED_PAGES = [*PAGES, ROOT / "benchmarks" / "README.md"]

FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
ANY_FENCE = re.compile(r"^```(\S*)[^\n]*\n.*?^```", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)

BLOCK_TIMEOUT = 50.0  # seconds for one block, interpreter start-up included
WORKERS = max(2, min(4, (os.cpu_count() or 2) + 1))
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


def _run(block: Block) -> Outcome:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    with tempfile.TemporaryDirectory(prefix="rxchat-doc-") as tmp:
        script = Path(tmp) / "example.py"
        script.write_text(block.code, encoding="utf-8")
        try:
            result = subprocess.run(
                [sys.executable, "-W", "error", str(script)],
                cwd=tmp,
                env=env,
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


@pytest.fixture(scope="module")
def block_runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[Outcome]]]:
    """Start every selected block at once on a small pool; each test waits for its own."""
    selected = [
        item.callspec.params["where"]
        for item in request.session.items
        if item.name.startswith("test_code_block_runs[") and hasattr(item, "callspec")
    ]
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="doc-block") as pool:
        futures = {where: pool.submit(_run, BY_WHERE[where]) for where in selected}
        yield futures
        for future in futures.values():
            future.cancel()


@pytest.mark.parametrize("where", list(BY_WHERE))
def test_code_block_runs(where: str, block_runs: dict[str, Future[Outcome]]) -> None:
    future = block_runs.get(where)
    outcome = future.result() if future is not None else _run(BY_WHERE[where])
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
    }
    assert expected <= names
    pages_with_blocks = {b.where.rsplit(":", 1)[0] for b in BLOCKS}
    for page in [*expected - {"docs/reliability.md"}, "README.md"]:
        assert page in pages_with_blocks, f"{page} has no ```python example"
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
        owners = [stem for stem, text in pages.items() if text.startswith("#") and name in text.splitlines()[0]]
        assert owners, f"no docs/operators page has ops.{name} in its title"
        assert f"operators/{owners[0]}.md" in index, f"docs/index.md does not link {owners[0]}.md"


def test_readme_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    fence = lines.index("```bash")
    assert lines[fence + 1].startswith("pip install -e . && rxchat demo")
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
