"""Genotypes of the AlphaGAN generator space: pure data, no TensorFlow.

A genotype names the chosen operation on every edge of the generator's search
space (see `../shared/spec/alphagan.md` and `cells.py`): three cells, each with
two "up" edges and three "normal" edges, plus the cross-cell skip edges
(skip_2: cell 1 node1 x2 into cell 2; skip_3: cell 1 node1 x4 and cell 2 node1
x2 into cell 3), which are "up"-kind edges too.

Edge order. Everything that lists edges (architecture weights of the search
generator, `derive_genotype`, `Genotype.edges()`) uses `EDGE_NAMES`:

    cell1.up[0], cell1.up[1], cell1.normal[0], cell1.normal[1], cell1.normal[2],
    cell2.up[0], ..., cell3.normal[2], skip_2[0], skip_3[0], skip_3[1]

JSON format (`Genotype.to_json()` / `Genotype.from_json()`; `save` / `load` for
files)::

    {
      "version": 1,
      "cells": [
        {"normal": ["conv_5x5", "conv_5x5", "sep_conv_5x5"], "up": ["deconv", "bilinear"]},
        {"normal": [...3 names...], "up": [...2 names...]},
        {"normal": [...3 names...], "up": [...2 names...]}
      ],
      "skip_2": ["nearest"],
      "skip_3": ["bilinear", "nearest"]
    }

`version` is optional on load (it must be 1 when present); any other key is an
error, and so is a file that is not UTF-8 or nests deeper than the format (4 levels). Normal edges take a name of `NORMAL_OPS`, up and skip edges a name of
`UP_OPS`. Every validation error names the offending field, e.g.
``cells[1].normal[2]: unknown op 'conv_9x9'; expected one of (...)``.

The operation names are the link to `operations.py` (which builds a layer per
name); they live here so that genotypes stay importable without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Mapping, Sequence

from alphagan_tf.utils import json_input

NORMAL_OPS: tuple[str, ...] = (
    "conv_1x1",
    "conv_3x3",
    "conv_5x5",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)
UP_OPS: tuple[str, ...] = ("deconv", "nearest", "bilinear")

NUM_CELLS = 3
NUM_NORMAL_EDGES = 3  # per cell
NUM_UP_EDGES = 2  # per cell
NUM_SKIP_2 = 1
NUM_SKIP_3 = 2
JSON_VERSION = 1
# Objects and arrays nest 4 deep in a genotype (object, cells, a cell, its op list): a file
# nested deeper is refused before it is read further.
JSON_DEPTH = 4

# Upsampling factor of each skip edge, in edge order (see the module docstring).
SKIP_2_SCALES: tuple[int, ...] = (2,)
SKIP_3_SCALES: tuple[int, ...] = (4, 2)


def _edge_table() -> tuple[tuple[str, str], ...]:
    edges = []
    for c in range(1, NUM_CELLS + 1):
        edges += [(f"cell{c}.up[{i}]", "up") for i in range(NUM_UP_EDGES)]
        edges += [(f"cell{c}.normal[{i}]", "normal") for i in range(NUM_NORMAL_EDGES)]
    edges += [(f"skip_2[{i}]", "up") for i in range(NUM_SKIP_2)]
    edges += [(f"skip_3[{i}]", "up") for i in range(NUM_SKIP_3)]
    return tuple(edges)


# (edge name, kind) of every edge of the space, in the canonical order.
EDGES: tuple[tuple[str, str], ...] = _edge_table()
EDGE_NAMES: tuple[str, ...] = tuple(name for name, _ in EDGES)


def candidates_for(kind: str) -> tuple[str, ...]:
    """The candidate op names of an edge kind ("normal" or "up")."""
    if kind == "normal":
        return NORMAL_OPS
    if kind == "up":
        return UP_OPS
    raise ValueError(f"Edge kind must be 'normal' or 'up'. Received: kind={kind!r}")


class GenotypeError(ValueError):
    """A genotype (or genotype file) that does not describe this space."""


def _check_names(field: str, names: Any, count: int, kind: str) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise GenotypeError(
            f"{field}: expected a list of {count} op names. Received: {names!r}"
        )
    if len(names) != count:
        raise GenotypeError(
            f"{field}: expected {count} edge(s), one op name each. "
            f"Received {len(names)}: {list(names)!r}"
        )
    allowed = candidates_for(kind)
    for i, name in enumerate(names):
        if name not in allowed:
            other = UP_OPS if kind == "normal" else NORMAL_OPS
            hint = ""
            if name in other:
                if kind == "normal":
                    hint = f" ({name!r} is an up op; {field} is a normal edge)"
                else:
                    hint = f" ({name!r} is a normal op; {field} is an up edge)"
            raise GenotypeError(
                f"{field}[{i}]: unknown op {name!r}{hint}; expected one of {allowed}"
            )
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class CellGenotype:
    """The chosen ops of one cell.

    Attributes:
        normal: 3 names of `NORMAL_OPS`: node1->node2, node2->node4, node3->node4.
        up: 2 names of `UP_OPS`: x->node1, x->node3.
    """

    normal: tuple[str, ...]
    up: tuple[str, ...]

    def __post_init__(self):
        self._validate("cell")

    def _validate(self, field: str) -> None:
        object.__setattr__(
            self,
            "normal",
            _check_names(f"{field}.normal", self.normal, NUM_NORMAL_EDGES, "normal"),
        )
        object.__setattr__(
            self, "up", _check_names(f"{field}.up", self.up, NUM_UP_EDGES, "up")
        )

    def to_dict(self) -> dict:
        return {"normal": list(self.normal), "up": list(self.up)}


@dataclasses.dataclass(frozen=True)
class Genotype:
    """A point of the AlphaGAN generator space: one op name per edge.

    Attributes:
        cells: 3 `CellGenotype`s, input to output.
        skip_2: 1 name of `UP_OPS`: cell 1 node1 (x2) into cell 2's node4.
        skip_3: 2 names of `UP_OPS`: cell 1 node1 (x4), cell 2 node1 (x2) into
            cell 3's node4.
    """

    cells: tuple[CellGenotype, ...]
    skip_2: tuple[str, ...]
    skip_3: tuple[str, ...]

    def __post_init__(self):
        cells = self.cells
        if isinstance(cells, (str, Mapping)) or not isinstance(cells, Sequence):
            raise GenotypeError(
                f"cells: expected a list of {NUM_CELLS} cells. Received: {cells!r}"
            )
        if len(cells) != NUM_CELLS:
            raise GenotypeError(
                f"cells: expected {NUM_CELLS} cells. Received {len(cells)}."
            )
        parsed = []
        for i, cell in enumerate(cells):
            if isinstance(cell, CellGenotype):
                cell._validate(f"cells[{i}]")
                parsed.append(cell)
            else:
                parsed.append(_cell_from_dict(cell, f"cells[{i}]"))
        object.__setattr__(self, "cells", tuple(parsed))
        object.__setattr__(
            self, "skip_2", _check_names("skip_2", self.skip_2, NUM_SKIP_2, "up")
        )
        object.__setattr__(
            self, "skip_3", _check_names("skip_3", self.skip_3, NUM_SKIP_3, "up")
        )

    # -- views -----------------------------------------------------------------
    def ops(self) -> tuple[str, ...]:
        """The chosen op of every edge, in `EDGE_NAMES` order."""
        out = []
        for cell in self.cells:
            out += list(cell.up) + list(cell.normal)
        return tuple(out + list(self.skip_2) + list(self.skip_3))

    def edges(self) -> list[tuple[str, str, str]]:
        """(edge name, kind, chosen op) for every edge, in `EDGE_NAMES` order."""
        return [(name, kind, op) for (name, kind), op in zip(EDGES, self.ops())]

    def table(self) -> str:
        """A human-readable table of the genotype (one line per cell and skips)."""
        lines = [f"{'cell':<6}{'normal[0..2]':<44}up[0..1]"]
        for i, cell in enumerate(self.cells, start=1):
            lines.append(f"{i:<6}{', '.join(cell.normal):<44}{', '.join(cell.up)}")
        lines.append(
            f"{'skip':<6}skip_2: {', '.join(self.skip_2)}; "
            f"skip_3: {', '.join(self.skip_3)}"
        )
        return "\n".join(lines)

    # -- serialization -----------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "version": JSON_VERSION,
            "cells": [cell.to_dict() for cell in self.cells],
            "skip_2": list(self.skip_2),
            "skip_3": list(self.skip_3),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "Genotype":
        """Builds a validated genotype from the JSON structure (module docstring)."""
        if not isinstance(data, Mapping):
            raise GenotypeError(
                f"genotype: expected a JSON object with keys cells, skip_2, skip_3. "
                f"Received: {type(data).__name__}"
            )
        allowed = {"version", "cells", "skip_2", "skip_3"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise GenotypeError(
                f"genotype: unknown key(s) {unknown}; expected {sorted(allowed)}"
            )
        missing = sorted({"cells", "skip_2", "skip_3"} - set(data))
        if missing:
            raise GenotypeError(f"genotype: missing key(s) {missing}")
        if data.get("version", JSON_VERSION) != JSON_VERSION:
            raise GenotypeError(
                f"version: expected {JSON_VERSION}. Received: {data['version']!r}"
            )
        return cls(cells=data["cells"], skip_2=data["skip_2"], skip_3=data["skip_3"])

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Genotype":
        """The genotype of JSON text (UTF-8 bytes or str; module docstring)."""
        try:
            data = json_input.loads(text, "genotype", max_depth=JSON_DEPTH)
        except json_input.JSONInputError as e:
            raise GenotypeError(str(e)) from None
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the JSON file (overwrites `path` only once the JSON exists)."""
        text = self.to_json()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Genotype":
        with open(path, "rb") as f:  # decoded by from_json: bad UTF-8 is a GenotypeError
            data = f.read()
        try:
            return cls.from_json(data)
        except GenotypeError as e:
            raise GenotypeError(f"{os.fspath(path)}: {e}") from None


def _cell_from_dict(cell: Any, field: str) -> CellGenotype:
    if not isinstance(cell, Mapping):
        raise GenotypeError(
            f"{field}: expected an object with keys normal, up. Received: {cell!r}"
        )
    unknown = sorted(set(cell) - {"normal", "up"})
    if unknown:
        raise GenotypeError(f"{field}: unknown key(s) {unknown}; expected ['normal', 'up']")
    missing = sorted({"normal", "up"} - set(cell))
    if missing:
        raise GenotypeError(f"{field}: missing key(s) {missing}")
    obj = CellGenotype.__new__(CellGenotype)
    object.__setattr__(obj, "normal", cell["normal"])
    object.__setattr__(obj, "up", cell["up"])
    obj._validate(field)
    return obj


# The published genotypes (spec, "Published genotypes").
PRESETS: dict[str, Genotype] = {
    "alphaGAN_l": Genotype(
        cells=(
            CellGenotype(normal=("conv_5x5", "conv_5x5", "sep_conv_5x5"), up=("deconv", "bilinear")),
            CellGenotype(normal=("conv_5x5", "conv_1x1", "conv_3x3"), up=("deconv", "bilinear")),
            CellGenotype(normal=("conv_1x1", "conv_5x5", "sep_conv_3x3"), up=("nearest", "bilinear")),
        ),
        skip_2=("nearest",),
        skip_3=("bilinear", "nearest"),
    ),
    "alphaGAN_s": Genotype(
        cells=(
            CellGenotype(normal=("conv_1x1", "sep_conv_3x3", "conv_1x1"), up=("bilinear", "deconv")),
            CellGenotype(normal=("sep_conv_5x5", "sep_conv_3x3", "sep_conv_3x3"), up=("deconv", "deconv")),
            CellGenotype(normal=("sep_conv_5x5", "sep_conv_3x3", "sep_conv_3x3"), up=("deconv", "nearest")),
        ),
        skip_2=("nearest",),
        skip_3=("deconv", "bilinear"),
    ),
}


def load_genotype(name_or_path: str | os.PathLike) -> Genotype:
    """A preset by name (`PRESETS`) or a genotype JSON file by path.

    Raises:
        GenotypeError: the file is not a valid genotype (the message names the field).
        FileNotFoundError: neither a preset name nor an existing file.
    """
    key = os.fspath(name_or_path)
    if key in PRESETS:
        return PRESETS[key]
    if not os.path.exists(key):
        raise FileNotFoundError(
            f"Genotype must be a preset name {sorted(PRESETS)} or a JSON file path. "
            f"Received: {key!r}"
        )
    if os.path.isdir(key):
        raise GenotypeError(
            f"Genotype must be a preset name {sorted(PRESETS)} or a JSON file path, not a "
            f"folder (a search workdir holds genotype.json). Received: {key!r}"
        )
    return Genotype.load(key)


def derive_genotype(
    alphas: Sequence[Any] | Mapping[str, Any],
) -> Genotype:
    """Derivation: the argmax of the architecture weights on every edge.

    Args:
        alphas: one vector of logits per edge, either a sequence in `EDGE_NAMES`
            order or a mapping edge name -> vector. Normal edges have
            len(NORMAL_OPS) = 6 entries, up/skip edges len(UP_OPS) = 3. Anything
            `float()`-able per entry works (lists, numpy arrays, variables).

    Returns:
        The genotype of the argmax op on every edge (first maximum on ties).
    """
    if isinstance(alphas, Mapping):
        missing = [name for name in EDGE_NAMES if name not in alphas]
        unknown = sorted(set(alphas) - set(EDGE_NAMES))
        if missing or unknown:
            raise GenotypeError(
                f"alphas: expected one vector per edge {list(EDGE_NAMES)}. "
                f"Missing: {missing}; unknown: {unknown}"
            )
        vectors = [alphas[name] for name in EDGE_NAMES]
    else:
        vectors = list(alphas)
        if len(vectors) != len(EDGES):
            raise GenotypeError(
                f"alphas: expected {len(EDGES)} vectors (one per edge, in EDGE_NAMES "
                f"order). Received {len(vectors)}."
            )
    chosen = []
    for (name, kind), vector in zip(EDGES, vectors):
        names = candidates_for(kind)
        values = [float(v) for v in _flatten(vector)]
        if len(values) != len(names):
            raise GenotypeError(
                f"alphas[{name}]: expected {len(names)} entries (one per op of "
                f"{names}). Received {len(values)}."
            )
        best = max(range(len(values)), key=lambda i: (values[i], -i))
        chosen.append(names[best])
    return genotype_from_ops(chosen)


def _flatten(vector: Any) -> list:
    if hasattr(vector, "numpy"):
        vector = vector.numpy()
    if hasattr(vector, "tolist"):
        vector = vector.tolist()
    return list(vector)


def genotype_from_ops(ops: Sequence[str]) -> Genotype:
    """The genotype of one op name per edge, in `EDGE_NAMES` order."""
    ops = list(ops)
    if len(ops) != len(EDGES):
        raise GenotypeError(
            f"ops: expected {len(EDGES)} op names (one per edge). Received {len(ops)}."
        )
    per_cell = NUM_UP_EDGES + NUM_NORMAL_EDGES
    cells = []
    for c in range(NUM_CELLS):
        block = ops[c * per_cell : (c + 1) * per_cell]
        cells.append({"normal": block[NUM_UP_EDGES:], "up": block[:NUM_UP_EDGES]})
    rest = ops[NUM_CELLS * per_cell :]
    return Genotype(
        cells=cells, skip_2=rest[:NUM_SKIP_2], skip_3=rest[NUM_SKIP_2:]
    )


def space_size(
    normal_ops: Sequence[str] = NORMAL_OPS, up_ops: Sequence[str] = UP_OPS
) -> int:
    """Number of architectures: |normal ops|^(normal edges) * |up ops|^(up edges).

    With the default candidates: 6^9 * 3^9 = 18^9 = 198,359,290,368 (~1.98e11).
    """
    counts = {"normal": 0, "up": 0}
    for _, kind in EDGES:
        counts[kind] += 1
    return math.prod([len(normal_ops) ** counts["normal"], len(up_ops) ** counts["up"]])
