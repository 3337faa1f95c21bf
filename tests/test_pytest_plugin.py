"""The pytest plugin installed with rxchat: registered by entry point, free until used, useful.

The user suites below run in a fresh pytest process in a temporary folder, as in a user's project:
the plugin comes from the installed distribution's ``pytest11`` entry point, not from this suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

HEAVY = ("rxchat", "aiohttp", "reactivex", "pydantic", "orjson", "yarl", "multidict")


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    return subprocess.run(
        # -p no:asyncio: pytest-asyncio warns about its unset loop scope in a folder without
        # configuration, and warnings are errors here; these user suites are synchronous.
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:asyncio",
            "-W",
            "error",
            *args,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_the_plugin_is_registered_by_an_entry_point() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("rxchat") == "pytest_rxchat"


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, pytest_rxchat\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.timeout(300)
def test_a_run_that_does_not_use_the_fixtures_pays_nothing(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(
        textwrap.dedent(
            f"""
            import sys

            def test_rxchat_is_not_imported(pytestconfig):
                assert pytestconfig.pluginmanager.has_plugin("rxchat"), "the plugin is loaded"
                heavy = [m for m in sys.modules if m.split(".")[0] in {HEAVY!r}]
                assert heavy == []
            """
        )
    )
    run = _pytest(tmp_path, "-q")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


@pytest.mark.timeout(300)
def test_a_user_suite_with_the_fixtures(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import os

            import openai

            import rxchat


            def summary(base_url: str) -> str:
                with rxchat.Client(base_url=base_url, api_key="sk-unused", max_retries=1) as client:
                    completion = client.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": "Summarize"}]
                    )
                return completion.choices[0].message.content or ""


            def from_env() -> str:
                client = openai.OpenAI(max_retries=0)  # OPENAI_BASE_URL / OPENAI_API_KEY
                try:
                    stream = client.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True
                    )
                    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                finally:
                    client.close()
            """
        )
    )
    (tmp_path / "test_app.py").write_text(
        textwrap.dedent(
            """
            import openai
            import pytest

            import app
            import rxchat


            def test_url(rxchat_mock_url):
                assert rxchat_mock_url.startswith("http://127.0.0.1:")
                assert app.summary(rxchat_mock_url)


            def test_scripted(rxchat_mock):
                rxchat_mock.script("All good.", {"status": 500}, {"status": 500})
                assert app.summary(rxchat_mock.url) == "All good."
                with pytest.raises(rxchat.InternalServerError):
                    app.summary(rxchat_mock.url)  # the one retry gets a 500 too
                assert len(rxchat_mock.requests) == 3


            @pytest.mark.rxchat_mock({"status": 503, "retry_after": "0"}, "Recovered.")
            def test_marker_retry(rxchat_mock):
                assert app.summary(rxchat_mock.url) == "Recovered."
                assert len(rxchat_mock.requests) == 2


            @pytest.mark.rxchat_mock("From the environment.")
            def test_env(rxchat_mock_env):
                assert app.from_env() == "From the environment."


            @pytest.mark.rxchat_mock(text="Everywhere.")
            def test_options(rxchat_mock):
                assert app.summary(rxchat_mock.url) == "Everywhere."
                assert app.summary(rxchat_mock.url) == "Everywhere."


            def test_fresh_server_per_test(rxchat_mock):
                assert rxchat_mock.requests == [] and rxchat_mock.pending_answers == 0


            @pytest.mark.rxchat_mock({"drop_after": 3})
            def test_fault_in_sync_stream(rxchat_mock_env):
                with pytest.raises(openai.APIError):
                    app.from_env()
            """
        )
    )
    run = _pytest(tmp_path, "-q")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "7 passed" in run.stdout, run.stdout


@pytest.mark.timeout(300)
def test_a_failing_user_test_fails(tmp_path: Path) -> None:
    """The fixtures do not hide a wrong expectation (the plugin's assertions are real)."""
    (tmp_path / "test_wrong.py").write_text(
        textwrap.dedent(
            """
            import rxchat

            def test_wrong(rxchat_mock):
                rxchat_mock.script("Actual.")
                with rxchat.Client(base_url=rxchat_mock.url, api_key="k") as client:
                    completion = client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": "Hi"}]
                    )
                assert completion.choices[0].message.content == "Expected."
            """
        )
    )
    run = _pytest(tmp_path, "-q")
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout + run.stderr
    assert "'Actual.' == 'Expected.'" in run.stdout
