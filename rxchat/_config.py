"""Configuration shared by the clients, the sources and the CLI: timeouts, environment, base URL.

Written once here so that every surface resolves ``base_url`` / ``api_key`` the same way and
validates timeouts with the same words.

Resolution (first match wins):

* API key: the argument, ``$RXCHAT_API_KEY``, ``$OPENAI_API_KEY``, else none (no header).
* Base URL: the argument, ``$RXCHAT_BASE_URL``, ``$OPENAI_BASE_URL``, else OpenAI's API.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from yarl import URL

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "BaseURL",
    "QueryValue",
    "Timeout",
    "is_credential_name",
    "query_items",
    "resolve_api_key",
    "resolve_base_url",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def resolve_base_url(base_url: str | None) -> str:
    """``base_url``, else ``RXCHAT_BASE_URL``, else ``OPENAI_BASE_URL``, else OpenAI's API."""
    return (
        base_url
        or os.environ.get("RXCHAT_BASE_URL")
        or os.environ.get("OPENAI_BASE_URL")
        or DEFAULT_BASE_URL
    )


def resolve_api_key(api_key: str | None) -> str | None:
    """``api_key``, else ``RXCHAT_API_KEY``, else ``OPENAI_API_KEY``, else ``None`` (no header)."""
    return api_key or os.environ.get("RXCHAT_API_KEY") or os.environ.get("OPENAI_API_KEY") or None


def _check_seconds(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"Timeout.{name} must be a number of seconds or None, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"Timeout.{name} must be a finite number > 0 or None, not {value!r}")


@dataclass(frozen=True, slots=True)
class Timeout:
    """Timeouts of one request, in seconds; ``None`` disables one.

    Each phase of a request has one bound (see ``docs/transport.md``, "Timeouts"):

    Attributes:
        connect: TCP connect plus TLS handshake of a new connection.
        read: (1) the whole wait for the response head — status line and headers — once
            connected: a server that trickles its headers byte by byte is cut off after
            ``read`` seconds; (2) the whole reading of a body that is not a stream (an error
            body, a JSON answer); (3) during a streamed (SSE) body, the longest silence between
            two reads: any bytes reset it, SSE keep-alive comments included (use ``idle`` or
            ``ops.idle_timeout`` to time model output).
        total: the whole request — retries, backoff and the streamed body included.
        idle: the longest wait for model output once the body has begun: time without a
            chunk. Keep-alive comments do NOT reset it, so a server that keeps the connection
            warm while the model is stuck raises :class:`~rxchat.IdleTimeoutError`.

    >>> Timeout.coerce(30)
    Timeout(connect=30, read=30, total=None, idle=None)
    >>> Timeout(read=5).total is None
    True
    """

    connect: float | None = 10.0
    read: float | None = 60.0
    total: float | None = None
    idle: float | None = None

    def __post_init__(self) -> None:
        _check_seconds("connect", self.connect)
        _check_seconds("read", self.read)
        _check_seconds("total", self.total)
        _check_seconds("idle", self.idle)

    @classmethod
    def coerce(cls, value: float | Timeout | None) -> Timeout:
        """Normalise a user's ``timeout=`` argument.

        As in the OpenAI SDK, a number sets the connect and read timeouts (a long healthy stream
        is never cut off by it) and ``None`` disables every timeout.

        Args:
            value: a number of seconds, a :class:`Timeout`, or ``None``.

        Returns:
            The :class:`Timeout` to apply.

        Raises:
            TypeError: ``value`` is not a number, a Timeout or None.
            ValueError: a number that is not finite and > 0.
        """
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(connect=None, read=None, total=None)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(
                f"timeout must be a number of seconds, a Timeout or None, not {value!r}"
            )
        return cls(connect=value, read=value, total=None)


DEFAULT_TIMEOUT = Timeout()
"""10 s to connect, 60 s of silence at most, no limit on the whole stream."""


QueryValue = str | int | float


def query_items(values: Mapping[str, QueryValue], what: str) -> dict[str, str]:
    """Query parameters checked (``str`` names, ``str`` or number values) and as text."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if (
            not isinstance(name, str)
            or isinstance(value, bool)
            or not isinstance(value, str | int | float)
        ):
            raise TypeError(f"{what} must map str to str or numbers, got {name!r}: {value!r}")
        out[name] = str(value)
    return out


@dataclass(frozen=True, slots=True)
class BaseURL:
    """A parsed ``base_url``: the API root, its query (Azure's ``api-version``) and credentials.

    ``base_url + path`` is built on the path, so ``https://h/openai/deployments/d?api-version=1``
    and ``/chat/completions`` give ``https://h/openai/deployments/d/chat/completions?api-version=1``
    (the OpenAI SDK does the same). ``default_query`` entries are added to the query; the
    base URL's own entries win over nothing, ``default_query`` over them.
    """

    root: URL  # scheme, host, port and path, no query, no fragment, credentials kept
    query: tuple[tuple[str, str], ...]
    user: str | None
    password: str | None

    @classmethod
    def parse(cls, base_url: str, default_query: Mapping[str, QueryValue] | None = None) -> BaseURL:
        """Parse and validate ``base_url`` (``ValueError`` names what is wrong)."""
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            shown = url.with_user(None) if url.is_absolute() else url
            raise ValueError(
                "base_url must be an absolute http(s) URL such as 'http://127.0.0.1:8000/v1', "
                f"not {str(shown.with_query(None))!r}"
            )
        query: dict[str, str] = dict(url.query)
        query.update(query_items(default_query or {}, "default_query"))
        return cls(
            root=url.with_query(None).with_fragment(None),
            query=tuple(query.items()),
            user=url.user,
            password=url.password,
        )

    def url(self, path: str, extra_query: Mapping[str, str] | None = None) -> URL:
        """The URL of ``path`` under the root, with the query (``extra_query``'s entries last)."""
        path = path if path.startswith("/") else "/" + path
        url = self.root.with_path(self.root.path.rstrip("/") + path)
        query = {**dict(self.query), **extra_query} if extra_query else self.query
        return url.with_query(query) if query else url

    def secrets(self) -> list[str]:
        """The values no message may show: the password, credential-like query values."""
        found = [self.password] if self.password else []
        found += [v for k, v in self.query if v and is_credential_name(k)]
        return found

    def safe(self, path: str = "") -> str:
        """The URL as shown in reprs and messages: no credentials (query credentials as ***)."""
        shown = str(self.root.with_user(None)).rstrip("/")
        if path:
            shown += path if path.startswith("/") else "/" + path
        if self.query:
            shown += "?" + "&".join(
                f"{k}={'***' if _CREDENTIAL_NAME.search(k) else v}" for k, v in self.query
            )
        return shown


_CREDENTIAL_NAME = re.compile(r"(?i)key|token|secret|sig|pass|auth|cred")


def is_credential_name(name: str) -> bool:
    """Whether a query parameter's name says its value is a credential (``key``, ``sig``, ...)."""
    return _CREDENTIAL_NAME.search(name) is not None
