"""Every ```python block of the README and of the pages below docs/ written with them runs.

Each block is a complete program (they start the embedded mock server themselves); it runs in a
fresh interpreter, in a temporary directory, and must exit 0 within the time limit.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    ROOT / "docs" / "index.md",
    ROOT / "docs" / "getting-started.md",
    *sorted((ROOT / "docs" / "concepts").glob("*.md")),
]
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for number, match in enumerate(FENCE.finditer(text), start=1):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page.relative_to(ROOT)}:{line}#{number}", match.group(1)))
    return found


BLOCKS = blocks()


def test_pages_exist_and_have_examples() -> None:
    names = {p.name for p in PAGES}
    concepts = {
        "sse-decoding.md",
        "wire-types.md",
        "errors.md",
        "sources-and-scheduling.md",
        "events.md",
        "fan-out.md",
        "cancellation.md",
    }
    assert concepts <= names
    assert len(BLOCKS) >= 10


def test_readme_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    fence = lines.index("```bash")
    assert lines[fence + 1].startswith("pip install -e . && rxchat demo")
    assert lines[fence + 2].startswith('pip install -e ".[test]" && python -m pytest -q')


def test_relative_links_resolve() -> None:
    link = re.compile(r"\]\(([^)#:]+)(?:#[^)]*)?\)")
    for page in [*PAGES, *(ROOT / "docs").glob("*.md")]:
        for target in link.findall(page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


@pytest.mark.parametrize(("where", "code"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_code_block_runs(where: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"
