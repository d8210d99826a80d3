"""Name -> class registries: the single place where params.yaml names meet code."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps config names to classes and builds them with validated options.

    An unknown name or option is a ValueError that names it and lists what is known, so a
    typo in params.yaml fails before any work starts.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def add(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._classes[name] = cls
            cls.registry_name = name  # type: ignore[attr-defined]
            return cls

        return add

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        if not isinstance(name, str) or name not in self._classes:
            raise ValueError(
                f"unknown {self.kind} name {name!r}; known {self.kind} names: {', '.join(self.names())}"
            )
        return self._classes[name]

    def options(self, name: str) -> dict[str, Any]:
        """The options a name accepts, with their defaults (inspect.Parameter.empty if required)."""
        params = inspect.signature(self.get(name).__init__).parameters
        return {
            p.name: p.default
            for p in list(params.values())[1:]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    def build(self, name: str, **opts: Any) -> T:
        """The class registered as ``name`` built with ``opts``, each a parameter of its
        constructor: e.g. ``build_loss("triplet", margin=0.2)``, the losses' build."""
        known = self.options(name)
        unknown = sorted(set(opts) - set(known))
        if unknown:
            raise ValueError(
                f"unknown option {unknown[0]!r} for {self.kind} {name!r}; "
                f"known options: {', '.join(sorted(known)) or '(none)'}"
            )
        return self.get(name)(**opts)
