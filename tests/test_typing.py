"""Static types: ``mypy --strict`` on a typed example, its ``reveal_type`` lines asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "typing" / "reactive_typed.py"
_EXPECTED = re.compile(r"reveal_type\(.*\)\s*# R: (.+)$")
_QUALIFIED = re.compile(r"\b(?:[A-Za-z_][A-Za-z0-9_]*\.)+([A-Za-z_][A-Za-z0-9_]*)")


def _short(type_text: str) -> str:
    """``reactivex.observable.observable.Observable[rxchat.types.X]`` -> ``Observable[X]``."""
    return _QUALIFIED.sub(r"\1", type_text)


@pytest.mark.timeout(600)  # a cold mypy cache takes a minute or more
def test_reactive_path_is_typed_like_the_client_path() -> None:
    expected = {}
    for number, line in enumerate(EXAMPLE.read_text().splitlines(), start=1):
        m = _EXPECTED.search(line)
        if m:
            expected[number] = m.group(1).strip()
    assert len(expected) >= 15
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    result = subprocess.run(
        [
            # mypy's own cache under the repository (.mypy_cache, shared with `mypy rxchat`)
            sys.executable, "-m", "mypy", "--strict", "--hide-error-context",
            "--no-error-summary", str(EXAMPLE),
        ],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=590,
    )  # fmt: skip
    revealed: dict[int, str] = {}
    errors = []
    for line in result.stdout.splitlines():
        m = re.match(r".*reactive_typed\.py:(\d+): (\w+): (.*)$", line)
        if not m:
            continue
        number, kind, text = int(m.group(1)), m.group(2), m.group(3)
        if kind == "note" and text.startswith("Revealed type is "):
            revealed[number] = _short(text[len("Revealed type is ") :].strip('"'))
        elif kind == "error":
            errors.append(line)
    assert not errors, "\n".join(errors)
    assert revealed == expected, result.stdout


PARAMS_EXAMPLE = ROOT / "tests" / "typing" / "client_params.py"
_EXPECTED_ERROR = re.compile(r"# E: (.+)$")


@pytest.mark.timeout(600)
def test_request_parameters_are_checked_by_mypy() -> None:
    # A misspelt parameter is a type error on every method, as with the openai SDK, and
    # create()'s return type still follows stream=.
    lines = PARAMS_EXAMPLE.read_text().splitlines()
    want_errors = {
        n: m.group(1).strip()
        for n, line in enumerate(lines, 1)
        if (m := _EXPECTED_ERROR.search(line))
    }
    want_types = {
        n: m.group(1).strip() for n, line in enumerate(lines, 1) if (m := _EXPECTED.search(line))
    }
    assert len(want_errors) >= 10 and len(want_types) >= 8
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--hide-error-context",
            "--no-error-summary", str(PARAMS_EXAMPLE),
        ],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=590,
    )  # fmt: skip
    errors: dict[int, list[str]] = {}
    revealed: dict[int, str] = {}
    for line in result.stdout.splitlines():
        m = re.match(r".*client_params\.py:(\d+): (\w+): (.*)$", line)
        if not m:
            continue
        number, kind, text = int(m.group(1)), m.group(2), m.group(3)
        if kind == "error":
            errors.setdefault(number, []).append(text)
        elif kind == "note" and text.startswith("Revealed type is "):
            revealed[number] = _short(text[len("Revealed type is ") :].strip('"'))
    assert set(errors) == set(want_errors), result.stdout
    for number, text in want_errors.items():
        assert any(text in error for error in errors[number]), (number, errors[number])
    assert revealed == want_types, result.stdout
