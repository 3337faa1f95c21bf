"""Terminal rendering for the CLI: live views with ``rich`` in a terminal, plain text otherwise.

Two views cover what the CLI shows: :class:`TextView` (an answer growing delta by delta) and
:class:`ValueView` (a structured value whose fields fill in). ``Output(plain=...)`` picks the
implementation: ``rich`` (the ``rxchat[rich]`` extra) when installed and stdout is a terminal,
else plain writes that are safe to pipe (no cursor movement, a line per change).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from pydantic import BaseModel

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Output", "TextView", "ValueView", "event_json", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """A pydantic model (or a value holding some) as plain JSON data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    return value


def event_json(event: BaseModel) -> str:
    """One stream event as one compact JSON line.

    The running ``snapshot`` (the whole answer so far) is left out: it would repeat everything
    on every line. A ``chunk`` event keeps its chunk, with the fields the server sent.
    """
    data = event.model_dump(mode="json", exclude={"snapshot", "chunk"})
    chunk = getattr(event, "chunk", None)
    if isinstance(chunk, BaseModel):
        data["chunk"] = chunk.model_dump(mode="json", exclude_unset=True)
    return orjson.dumps(data).decode()


def _short(value: Any) -> str:
    return orjson.dumps(to_jsonable(value)).decode()


class Output:
    """Where and how the CLI writes: rich live views, or plain text.

    Args:
        plain: force plain text even in a terminal.
        stream: the output stream (stdout by default).
    """

    def __init__(self, *, plain: bool = False, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.console: Console | None = None
        if not plain and self.stream.isatty():
            try:
                from rich.console import Console
            except ImportError:  # the rich extra is not installed
                pass
            else:
                self.console = Console(file=self.stream, highlight=False)

    @property
    def rich(self) -> bool:
        """True when views render live with rich."""
        return self.console is not None

    def heading(self, text: str) -> None:
        """A section title."""
        if self.console is not None:
            self.console.rule(f"[bold]{text}")
        else:
            self.stream.write(f"== {text}\n")
            self.stream.flush()

    def line(self, text: str = "") -> None:
        """A line of plain information."""
        if self.console is not None:
            self.console.print(text, markup=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def text_view(self, *, markdown: bool = True) -> TextView:
        """A view of an answer that grows delta by delta."""
        return TextView(self, markdown=markdown)

    def value_view(self, title: str) -> ValueView:
        """A view of a structured value whose fields fill in."""
        return ValueView(self, title)


class TextView:
    """An answer growing delta by delta: live Markdown with rich, else written as it comes."""

    def __init__(self, output: Output, *, markdown: bool) -> None:
        self._output = output
        self._parts: list[str] = []
        self._markdown = markdown
        self._live: Any = None
        self._wrote_any = False

    def __enter__(self) -> TextView:
        if self._output.console is not None:
            from rich.live import Live

            self._live = Live(
                "", console=self._output.console, refresh_per_second=15, vertical_overflow="visible"
            )
            self._live.__enter__()
        return self

    def append(self, delta: str) -> None:
        """Show one more piece of the answer."""
        if not delta:
            return
        self._parts.append(delta)
        if self._live is not None:
            self._live.update(self._renderable(), refresh=False)
        else:
            stream = self._output.stream
            stream.write(delta)
            stream.flush()
            self._wrote_any = True

    @property
    def text(self) -> str:
        """Everything shown so far."""
        return "".join(self._parts)

    def _renderable(self) -> Any:
        text = self.text
        if self._markdown:
            from rich.markdown import Markdown

            return Markdown(text)
        from rich.text import Text

        return Text(text)

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.update(self._renderable(), refresh=True)
            self._live.__exit__(None, None, None)
        elif self._wrote_any:
            self._output.stream.write("\n")
            self._output.stream.flush()


class ValueView:
    """A structured value whose fields fill in: a live table with rich, else a line per change."""

    def __init__(self, output: Output, title: str) -> None:
        self._output = output
        self._title = title
        self._last: str | None = None
        self._value: Any = None
        self._final: Any = None
        self._done = False
        self._live: Any = None

    def __enter__(self) -> ValueView:
        if self._output.console is not None:
            from rich.live import Live

            self._live = Live(self._table(), console=self._output.console, refresh_per_second=15)
            self._live.__enter__()
        return self

    def update(self, value: Any) -> None:
        """Show the value so far (a partial dict, usually); unchanged values are not shown again."""
        if value is None:
            return
        shown = _short(value)
        if shown == self._last:
            return
        self._last = shown
        self._value = to_jsonable(value)
        if self._live is not None:
            self._live.update(self._table(), refresh=False)
        else:
            self._output.line(f"  partial: {shown}")

    def finish(self, final: Any) -> None:
        """Show the complete, validated value."""
        self._final = final
        self._done = True
        self._value = to_jsonable(final)
        if self._live is not None:
            self._live.update(self._table(), refresh=True)
        else:
            self._output.line(f"  done: {final!r}")

    def _table(self) -> Any:
        from rich.table import Table

        status = "[green]done[/green]" if self._done else "[yellow]streaming…[/yellow]"
        table = Table(title=f"{self._title}  {status}", title_justify="left", expand=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        value = self._value
        if isinstance(value, dict):
            for key, item in value.items():
                table.add_row(str(key), item if isinstance(item, str) else _short(item))
        elif value is not None:
            table.add_row("(value)", _short(value))
        return table

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            if self._done and self._output.console is not None:
                self._output.console.print(f"done: {self._final!r}", markup=False)
