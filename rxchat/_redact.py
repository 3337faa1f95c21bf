"""Secrets out of everything an error can reach: its texts, attributes and cause chain.

A :class:`Redactor` knows the secret values of one transport — the API key, a ``base_url``
password (and the Basic header made of it), credential headers given in ``default_headers`` —
and removes every spelling of them (:func:`rxchat.errors.secret_forms`). rxchat's errors are
built from redacted text; :meth:`Redactor.scrub` cleans the foreign exceptions kept as their
``__cause__`` / ``__context__``, whose attributes (aiohttp's ``request_info.headers``) carry the
request's ``Authorization`` header.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from .errors import redact_values, secret_forms

__all__ = ["CREDENTIAL_HEADER", "Redactor"]

CREDENTIAL_HEADER = re.compile(
    r"(?i)^(authorization|proxy-authorization|cookie|set-cookie|www-authenticate|"
    r"proxy-authenticate|.*api[-_]?key.*|.*token.*|.*secret.*|.*auth.*)$"
)
"""Header names whose value is a credential: their values are secrets wherever they appear."""

_HIDDEN = "***"


class Redactor:
    """Removes one transport's secret values from texts, structures and exception chains."""

    __slots__ = ("secrets",)

    def __init__(self, secrets: Iterable[str | None]) -> None:
        found: set[str] = set()
        for secret in secrets:
            if secret:
                found.add(secret)
        self.secrets: tuple[str, ...] = tuple(sorted(found, key=len, reverse=True))

    @classmethod
    def for_transport(
        cls,
        *,
        api_key: str | None,
        user: str | None,
        password: str | None,
        headers: Mapping[str, str],
        extra: Iterable[str] = (),
    ) -> Redactor:
        """The secrets of a transport's configuration."""
        secrets: list[str | None] = [api_key, password, *extra]
        if password:
            basic = base64.b64encode(f"{user or ''}:{password}".encode()).decode()
            secrets.append(basic)
        for name, value in headers.items():
            if CREDENTIAL_HEADER.match(name) and value:
                secrets.append(value)
                # "Bearer sk-...": the token alone is the secret too.
                scheme, _, token = value.partition(" ")
                if token and scheme.isalpha():
                    secrets.append(token)
        return cls(secrets)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        """``text`` with every secret spelling replaced by ``***``."""
        if not self.secrets:
            return text
        return redact_values(text, *self.secrets)

    def contains(self, text: str) -> bool:
        """Whether ``text`` holds a secret in any spelling."""
        return any(form in text for s in self.secrets for form in secret_forms(s))

    def value(self, value: Any) -> Any:
        """A copy of ``value`` without secrets (strings, bytes, containers, headers, URLs)."""
        if not self.secrets:
            return value
        return self._value(value, 0)

    def headers(self, headers: Mapping[str, str]) -> CIMultiDict[str]:
        """A case-insensitive copy of ``headers`` with the secret values replaced."""
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in headers.items():
            out.add(name, self.text(value) if isinstance(value, str) else value)
        return out

    def _value(self, value: Any, depth: int) -> Any:
        if depth > 20:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes | bytearray):
            text = bytes(value).decode("utf-8", "surrogateescape")
            clean = self.text(text)
            return value if clean == text else clean.encode("utf-8", "surrogateescape")
        if isinstance(value, URL):
            clean = self.text(str(value))
            return value if clean == str(value) else URL(clean, encoded=True)
        if isinstance(value, aiohttp.RequestInfo):
            return aiohttp.RequestInfo(
                url=self._value(value.url, depth + 1),
                method=value.method,
                headers=CIMultiDictProxy(self._hide_credentials(value.headers)),
                real_url=self._value(value.real_url, depth + 1),
            )
        if isinstance(value, aiohttp.ClientResponse):
            return None  # a redirect history entry: holds the request and its headers
        if isinstance(value, CIMultiDict | CIMultiDictProxy):
            return CIMultiDictProxy(self.headers(value))
        if isinstance(value, MultiDict | MultiDictProxy):
            out: MultiDict[Any] = MultiDict()
            for k, v in value.items():
                out.add(k, self._value(v, depth + 1))
            return MultiDictProxy(out)
        if isinstance(value, dict):
            return {k: self._value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(v, depth + 1) for v in value]
        if isinstance(value, tuple):
            items = [self._value(v, depth + 1) for v in value]
            if hasattr(value, "_make"):
                return value._make(items)  # a named tuple (aiohttp's RawResponseMessage)
            return tuple(
                v
                for v, original in zip(items, value, strict=True)
                if not isinstance(original, aiohttp.ClientResponse)
            )
        return value

    def _hide_credentials(self, headers: Mapping[str, str]) -> CIMultiDict[str]:
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in headers.items():
            if CREDENTIAL_HEADER.match(name):
                out.add(name, _HIDDEN)
            else:
                out.add(name, self.text(value) if isinstance(value, str) else value)
        return out

    def scrub(self, err: BaseException | None) -> None:
        """Remove the secrets from ``err`` and its whole ``__cause__`` / ``__context__`` chain.

        Foreign exceptions are cleaned in place: ``args``, every attribute in ``__dict__``
        (aiohttp's ``request_info`` keeps the request headers: credential headers become
        ``***``), and so on down the chain.
        """
        seen: set[int] = set()
        todo = [err]
        while todo:
            exc = todo.pop()
            if exc is None or id(exc) in seen:
                continue
            seen.add(id(exc))
            self._scrub_one(exc)
            todo.append(exc.__cause__)
            todo.append(exc.__context__)

    def _scrub_one(self, exc: BaseException) -> None:
        with contextlib.suppress(TypeError, AttributeError):
            exc.args = tuple(self._scrub_attr(a) for a in exc.args)
        attributes = getattr(exc, "__dict__", None)
        if not attributes:
            return
        for name, value in list(attributes.items()):
            if isinstance(value, BaseException):
                continue  # walked as part of the chain only when it is the cause or context
            clean = self._scrub_attr(value)
            if clean is not value:
                try:
                    setattr(exc, name, clean)
                except (AttributeError, TypeError):
                    attributes[name] = clean

    def _scrub_attr(self, value: Any) -> Any:
        if isinstance(value, aiohttp.RequestInfo):
            return self._value(value, 0)  # credential headers hidden whatever the secrets
        if not self.secrets:
            return value
        clean = self._value(value, 0)
        if isinstance(clean, str | bytes) and clean == value:
            return value
        return clean
