"""Typed configs that read back: frozen dataclasses <-> dicts (the JSON a run writes).

Every run configuration (`SearchRunConfig`, `SearchConfig`, `ArchOptimizerConfig`,
`TrainRunConfig`, `TrainConfig`) is a frozen dataclass deriving from `TypedConfig`:

    config.to_dict()            plain JSON-able dict (nested configs nested), as
                                dataclasses.asdict writes it
    Config.from_dict(d, where)  the same config back; unknown keys are one error naming
                                them and `where` (a file another command or another
                                version wrote is never read by raw keys); missing keys
                                take their defaults; __post_init__ validates again

The CLI modules build configs from flags (`config_from_flags`); this module
knows nothing of flags.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from typing import Any, Mapping, TypeVar

T = TypeVar("T", bound="TypedConfig")


class ConfigError(ValueError):
    """A configuration read back does not fit its config (the message names the key and file)."""


def _config_type(annotation) -> type | None:
    """The TypedConfig class a field holds (also inside Optional[...]), or None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, TypedConfig):
            return candidate
    return None


def _is_tuple(annotation) -> bool:
    return annotation is tuple or typing.get_origin(annotation) is tuple


@dataclasses.dataclass(frozen=True)
class TypedConfig:
    """Base of the run configs: `to_dict`, `from_dict` (module docstring)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
        """The config `to_dict` wrote; `where` names the source in errors (e.g. a file)."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{where or cls.__name__}: expected a mapping of {cls.__name__} fields. "
                f"Received: {type(data).__name__}"
            )
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"{where or cls.__name__}: unknown {cls.__name__} key(s) {unknown}; "
                f"expected some of {sorted(names)}"
            )
        kwargs = {}
        for name, value in data.items():
            inner = _config_type(hints[name])
            if inner is not None and isinstance(value, Mapping):
                value = inner.from_dict(value, where=f"{where}.{name}" if where else name)
            elif _is_tuple(hints[name]) and isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)

    @classmethod
    def read(cls: type[T], path: str, missing: str) -> T:
        """`from_dict` of the JSON file at `path`; FileNotFoundError(`missing`) when it is absent."""
        if not os.path.exists(path):
            raise FileNotFoundError(missing)
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f), where=path)
