"""What ships: the public namespace, the license, the wheel and sdist contents, typing for users."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

import rxchat

ROOT = Path(__file__).resolve().parents[1]
# Files of the source tree that are not source (build products, caches, local state).
_NOT_SOURCE = (
    "__pycache__",
    ".pyc",
    ".so",
    ".egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "node_modules",  # npm ci of tests/browser/node: installed, not source
)


def _source_files(folder: Path) -> set[str]:
    """The files below ``folder``, relative to the repository root, build products left out."""
    return {
        p.relative_to(ROOT).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not any(part in p.as_posix() for part in _NOT_SOURCE)
    }


# -- the public namespace -------------------------------------------------------------------


def test_dir_shows_the_public_names_only() -> None:
    public = {name for name in dir(rxchat) if not name.startswith("_")}
    assert "Any" not in public and "TYPE_CHECKING" not in public
    assert public - set(rxchat.__all__) == set(), "every public name is exported on purpose"
    assert "mock" in dir(rxchat), "the lazily imported mock server is listed too"
    for name in rxchat.__all__:
        assert getattr(rxchat, name) is not None, name


def test_star_imports_export_no_internal_helpers() -> None:
    errors_ns: dict[str, object] = {}
    exec("from rxchat.errors import *", errors_ns)
    assert "status_error_class" not in errors_ns and "redact" not in errors_ns
    assert "RateLimitError" in errors_ns and "RxChatError" in errors_ns
    top_ns: dict[str, object] = {}
    exec("from rxchat import *", top_ns)
    assert "status_error_class" not in top_ns
    # Documented in docs/concepts/errors.md for users' own logging: public on purpose.
    assert top_ns["redact"] is rxchat.errors.redact
    assert rxchat.redact("key sk-proj-abcdef1234567890") == "key sk-pro***"
    every_error = [n for n in rxchat.errors.__all__]
    assert all(n in top_ns for n in every_error)
    assert not hasattr(rxchat, "status_error_class")
    assert rxchat.errors.status_error_class(429) is rxchat.RateLimitError  # internal, still there


def test_the_version_is_written_once() -> None:
    from importlib.metadata import version

    from rxchat import __version__
    from rxchat._transport import _USER_AGENT as user_agent

    assert rxchat.__version__ == __version__ == version("rxchat")
    assert user_agent == f"rxchat/{__version__}"
    cli = subprocess.run(
        [sys.executable, "-m", "rxchat", "--version"], capture_output=True, text=True, timeout=60
    )
    assert cli.stdout.strip() == f"rxchat {__version__}"
    pyproject = (ROOT / "pyproject.toml").read_text()
    project = pyproject.split("[tool.")[0]
    assert 'dynamic = ["version"]' in project and "\nversion =" not in project


def test_license_is_mit_and_present() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


# -- built distributions --------------------------------------------------------------------


def _copy_source(dest: Path) -> Path:
    """The source tree without build products, so the build starts from what a clone has."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        drop = {n for n in names if n in {".git", "build", "dist", ".venv", "venv"}}
        return drop | {n for n in names if any(n.endswith(s) or n == s for s in _NOT_SOURCE)}

    src = dest / "src"
    shutil.copytree(ROOT, src, ignore=ignore)
    return src


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``python -m build``: the sdist, then the wheel built from that sdist."""
    tmp = tmp_path_factory.mktemp("dists")
    src = _copy_source(tmp)
    out = tmp / "dist"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    (sdist,) = out.glob("rxchat-*.tar.gz")
    (wheel,) = out.glob("rxchat-*.whl")
    return sdist, wheel


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_sdist_is_a_complete_testable_source_tree(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    expected = (
        _source_files(ROOT / "tests")
        | _source_files(ROOT / "docs")
        | _source_files(ROOT / "rxchat")
        | _source_files(ROOT / "examples")
        | _source_files(ROOT / "benchmarks")
    )
    missing = expected - names
    assert missing == set(), f"not in the sdist: {sorted(missing)[:20]}"
    for must in [
        "LICENSE",
        "README.md",
        "CONTRIBUTING.md",
        "pyproject.toml",
        "setup.py",
        "rxchat/_speedups.c",
        "rxchat/py.typed",
        "tests/conftest.py",
        "tests/mock/conftest.py",
        "tests/reliability/conftest.py",
        "tests/fixtures/openai/MANIFEST.json",
        "tests/fixtures/openai/plain_text.sse",
    ]:
        assert must in names, must
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".so"))]
    assert top == sdist.name.removesuffix(".tar.gz")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_sdists_tests_collect_and_run(dists: tuple[Path, Path], tmp_path: Path) -> None:
    """Unpacked alone, the sdist's suite collects completely and its corpus tests pass."""
    sdist, _ = dists
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    (tree,) = tmp_path.iterdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    collect = subprocess.run(
        [*base, "--co"], cwd=tree, capture_output=True, text=True, env=env, timeout=600
    )
    assert collect.returncode == 0, collect.stdout[-4000:] + collect.stderr[-2000:]
    assert "error" not in collect.stdout.lower().splitlines()[-1]
    runs = subprocess.run(
        [
            *base,
            "tests/test_corpus.py::test_corpus_matches_manifest",
            "tests/test_corpus.py::test_whole_body",
            "tests/test_docs.py::test_relative_links_resolve",
            "tests/test_docs.py::test_every_page_is_reachable_from_the_readme",
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert runs.returncode == 0, runs.stdout[-4000:] + runs.stderr[-2000:]
    assert " passed" in runs.stdout and "skipped" not in runs.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_wheel_ships_the_package_typed_and_licensed(dists: tuple[Path, Path]) -> None:
    _, wheel = dists
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = whl.read(f"{info}/METADATA").decode()
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
    package = {n for n in _source_files(ROOT / "rxchat") if n.endswith((".py", ".pyi", "py.typed"))}
    assert package - names == set()
    assert "pytest_rxchat.py" in names, "the pytest plugin"
    assert f"{info}/licenses/LICENSE" in names
    assert "License-Expression: MIT" in metadata
    assert not [n for n in names if n.startswith(("tests/", "docs/", "benchmarks/", "examples/"))]
    assert "rxchat._speedups.c" not in names and "rxchat/_speedups.c" not in names
    assert "rxchat = rxchat._cli:main" in entry_points
    assert "[pytest11]" in entry_points and "rxchat = pytest_rxchat" in entry_points
    assert f"\nVersion: {rxchat.__version__}\n" in metadata  # pyproject reads rxchat/_version.py


# -- typing for users -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_installed_package_is_visible_to_mypy(tmp_path: Path) -> None:
    """A user's file outside the repository type-checks against rxchat, editable install too."""
    user = tmp_path / "app.py"
    user.write_text(
        textwrap.dedent(
            """
            import rxchat
            from rxchat import operators as ops

            client = rxchat.Client(base_url="http://127.0.0.1:9/v1", api_key="sk-unused")
            lines = ops.buffer_text(by="line")
            reveal_type(client)
            reveal_type(lines)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / "cache"),
            "app.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert "Cannot find implementation or library stub" not in run.stdout, run.stdout
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'Revealed type is "rxchat._client_sync.Client"' in run.stdout
    assert "Observable[str]" in run.stdout  # ops.buffer_text(by="line"): text pieces
