"""``partial_objects``: the content as typed ``Partial[Model]`` objects while it streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactivex import Observable, abc

from .._partial import ModelT, Partial, PartialObjectParser
from ._support import StateFollower, with_completion

__all__ = ["partial_objects"]


def partial_objects(
    model: type[ModelT], *, choice_index: int = 0, partial_strings: bool = True
) -> Callable[[Observable[Any]], Observable[Partial[ModelT]]]:
    """Emit a typed partial object of ``model`` each time more of the answer is visible.

    Opt-in beside ``content.delta.parsed`` (a dict, as in the SDKs): each item is a
    ``Partial[model]`` instance — every field optional, nested models partial too — and a new
    one comes only when something changed. A field once shown never disappears, and a number
    shows its longest valid prefix (``57``, still ``57`` while ``57.`` arrives, then ``57.23``);
    strings show their text so far unless ``partial_strings=False``. The last item holds every
    field of the answer; the validated ``model`` itself is on ``content.done`` /
    ``ops.final_completion()``. The work per delta does not grow with the answer.

    ::

        content:  '{"name": "Pa'   'ris", "temp": 57'   '.'   '2}'
        items:    (name='Pa')      (name='Paris', temp=57.0)   (name='Paris', temp=57.2)

    Args:
        model: the pydantic model the content is JSON of (ask for it with
            ``response_format``).
        choice_index: the choice to follow (``n > 1``).
        partial_strings: show unterminated strings.

    Returns:
        An operator from chunks or events to ``Partial[model]`` objects.

    Raises:
        (as ``on_error``) :class:`~rxchat.errors.PartialJSONError` when the content cannot be
        JSON any more (after an item with what was valid before the offending character);
        upstream errors pass through with ``.completion`` set.
        ``TypeError`` when ``model`` is not a pydantic model class (at call time).

    >>> events.pipe(ops.partial_objects(City)).subscribe(
    ...     lambda city: print(city.name, city.population))  # doctest: +SKIP
    Pa None
    Paris None
    Paris 2102650
    """
    PartialObjectParser(model)  # reject a bad model now

    def _partial_objects(source: Observable[Any]) -> Observable[Partial[ModelT]]:
        def subscribe(
            observer: abc.ObserverBase[Partial[ModelT]],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            follower = StateFollower("partial_objects")
            parser = PartialObjectParser(model, partial_strings=partial_strings)
            stopped = False
            last: list[Any] = [None]

            def on_next(item: Any) -> None:
                nonlocal stopped
                if stopped:
                    return
                try:
                    for event in follower.follow(item):
                        if event.type == "content.delta" and event.choice_index == choice_index:
                            partial = parser.feed(event.delta)
                            if partial is not None:
                                last[0] = partial
                                observer.on_next(partial)
                except Exception as err:
                    stopped = True
                    value = parser.value
                    if value is not None and value is not last[0]:
                        observer.on_next(value)  # what was valid before the bad character
                    observer.on_error(with_completion(err, follower.state))

            def on_error(err: Exception) -> None:
                if not stopped:
                    observer.on_error(with_completion(err, follower.state))

            def on_completed() -> None:
                if not stopped:
                    observer.on_completed()

            return source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return _partial_objects
