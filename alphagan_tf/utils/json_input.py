"""JSON from outside (a user's file, a request body), read with bounds: one clear error.

`loads` accepts only UTF-8 text that parses as JSON and nests at most `max_depth`
containers deep. Without it, bytes that are not UTF-8 raise a `UnicodeDecodeError` and a
document nested 100k deep a `RecursionError`: tracebacks, not messages. Each caller
states the depth its documents can have (a genotype 4, a Predict body its tensor's rank
+ 3), so anything deeper is refused before it is used.
"""

from __future__ import annotations

import json
from typing import Any


class JSONInputError(ValueError):
    """Text that is not UTF-8, not JSON, or nests deeper than allowed (the message says which)."""


def _depth(value: Any) -> int:
    """How many containers deep `value` nests (0 for a number or string); iterative."""
    if not isinstance(value, (dict, list)):
        return 0
    deepest, stack = 1, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def loads(data: bytes | str, what: str, max_depth: int) -> Any:
    """The JSON value of `data`.

    Args:
        data: UTF-8 bytes or text.
        what: names the input in errors ("genotype.json", "the request body").
        max_depth: the most containers (objects, arrays) a value may nest.

    Raises:
        JSONInputError: "WHAT is not UTF-8 text (...)", "WHAT is not valid JSON (...)" or
            "WHAT nests deeper than MAX_DEPTH levels (...)".
    """
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise JSONInputError(
                f"{what} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})"
            ) from None
    too_deep = f"{what} nests deeper than {max_depth} levels of objects and arrays"
    try:
        value = json.loads(data)
    except json.JSONDecodeError as e:
        raise JSONInputError(f"{what} is not valid JSON ({e})") from None
    except RecursionError:  # beyond Python's recursion limit, so beyond max_depth too
        raise JSONInputError(f"{too_deep} (more than the parser's limit)") from None
    depth = _depth(value)
    if depth > max_depth:
        raise JSONInputError(f"{too_deep}. Received: {depth} levels")
    return value
