"""Typed configs that read back: frozen dataclasses <-> dicts (the JSON a run writes).

Every run configuration (`SearchRunConfig`, `SearchConfig`, `ArchOptimizerConfig`,
`TrainRunConfig`, `TrainConfig`) is a frozen dataclass deriving from `TypedConfig`:

    config.to_dict()            plain JSON-able dict (nested configs nested), as
                                dataclasses.asdict writes it
    Config.from_dict(d, where)  the same config back; unknown keys are one error naming
                                them and `where` (a file another command or another
                                version wrote is never read by raw keys); missing keys
                                take their defaults; __post_init__ validates again

    config.differences(other)   the dotted keys whose values differ (a resumed run's
                                config against the one its workdir holds)

Every config checks its own values in `__post_init__` with `require`, raising a
`ConfigError` that names the field (`key`) and the value: field names are the
flag names, so the CLI edge turns it into one `error: --key: ...` line.

The CLI modules build configs from flags (`config_from_flags`); this module
knows nothing of flags.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from typing import Any, Mapping, TypeVar

T = TypeVar("T", bound="TypedConfig")


class ConfigError(ValueError):
    """A value or a file does not fit its config; `key` names the field when one is at fault."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def require(condition: bool, key: str, value: Any, what: str) -> None:
    """Raises ConfigError("KEY: WHAT. Received: VALUE", key=KEY) unless `condition`."""
    if not condition:
        raise ConfigError(f"{key}: {what}. Received: {value!r}", key=key)


def require_positive(config: Any, *names: str) -> None:
    """Every named integer field of `config` must be >= 1."""
    for name in names:
        value = getattr(config, name)
        require(isinstance(value, int) and value >= 1, name, value, "must be an integer >= 1")


def require_finite_positive(config: Any, *names: str) -> None:
    """Every named float field of `config` must be finite and > 0 (learning rates)."""
    for name in names:
        value = getattr(config, name)
        require(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                name, value, "must be a finite number > 0")


def require_non_negative(config: Any, *names: str) -> None:
    """Every named float field of `config` must be finite and >= 0 (0 often meaning "off")."""
    for name in names:
        value = getattr(config, name)
        require(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
                name, value, "must be a finite number >= 0")


def require_fraction(config: Any, *names: str, closed: bool = True) -> None:
    """Every named float field of `config` must be in [0, 1] (or [0, 1) when not `closed`)."""
    for name in names:
        value = getattr(config, name)
        ok = isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value
        ok = ok and (value <= 1 if closed else value < 1)
        require(ok, name, value, f"must be in [0, 1{']' if closed else ')'}")


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
        data = dict(data)
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

    def differences(self, other: "TypedConfig") -> list[str]:
        """Dotted keys (e.g. "model.gf") whose values differ between `self` and `other`."""
        return _differences(self.to_dict(), other.to_dict(), "")

    @classmethod
    def read(cls: type[T], path: str, missing: str) -> T:
        """`from_dict` of the JSON file at `path`; FileNotFoundError(`missing`) when it is absent."""
        if not os.path.exists(path):
            raise FileNotFoundError(missing)
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f), where=path)


def _differences(a: Mapping, b: Mapping, prefix: str) -> list[str]:
    keys = []
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            keys += _differences(x, y, f"{prefix}{name}.")
        elif x != y and not (isinstance(x, (list, tuple)) and isinstance(y, (list, tuple))
                             and list(x) == list(y)):
            keys.append(f"{prefix}{name}")
    return keys
