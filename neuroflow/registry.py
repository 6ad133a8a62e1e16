"""Name -> object registries, so that a config can name models, datasets and hardware by string."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from neuroflow.errors import RegistryError

T = TypeVar("T")


def nearest(name: str, choices) -> str | None:
    """The closest string to ``name`` among ``choices`` (for "did you mean" messages), or None."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return match[0] if match else None


class Registry(Generic[T]):
    """A named collection of builders: ``@MODELS.register("scnn")`` then ``MODELS.get("scnn")``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            hint = nearest(name, self._items)
            suggestion = f"; did you mean {hint!r}?" if hint else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}{suggestion} "
                f"(known: {', '.join(sorted(self._items))})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
