"""TextNAS architectures as pure data (no TensorFlow import).

An architecture is a list of layers; layer `i` records

- `op`: one of `OPS` (the TextNAS candidate operations);
- `input`: the index of the layer whose output it reads, `-1` meaning the stem
  (embedding -> 1x1 conv -> BN -> ReLU). Layer `i` may read one of the previous
  `MAX_INPUT_DISTANCE` = 5 outputs of the sequence `stem, layer 0, layer 1, ...`,
  i.e. `max(-1, i - 5) <= input <= i - 1`; layer 0 always reads the stem;
- `skips`: a sorted subset of the earlier layers `0 .. i - 1` whose outputs are
  summed into the layer's output (before its batch normalisation).

JSON form (written by the search, read by the retrainer)::

    {"format": "textnas_architecture", "version": 1,
     "layers": [{"op": "max_pool_3", "input": -1, "skips": []}, ...]}

`PRESETS["textnas_paper"]` is the architecture published with the TextNAS paper
(Wang et al., 2020). The paper gives its 24 operations; it does not give the
input choices or skip connections, so the preset is *our* completion: every
layer reads the previous layer (layer 0 the stem) and there are no skip
connections. The final softmax-weighted combination of all layer outputs still
gives every layer a direct path to the classifier.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from typing import Any, Mapping, Sequence

#: Candidate operations, in the order of the mixed op's alphas.
OPS: tuple[str, ...] = (
    "conv_1",
    "conv_3",
    "conv_5",
    "conv_7",
    "avg_pool_3",
    "max_pool_3",
    "bi_gru",
    "self_attention",
)

#: A layer reads one of this many previous outputs (stem included).
MAX_INPUT_DISTANCE = 5

#: Index of the stem output in `input`.
STEM = -1

FORMAT = "textnas_architecture"
VERSION = 1


def input_candidates(layer_index: int) -> list[int]:
    """The indices layer `layer_index` may read, oldest first (-1 = the stem)."""
    if layer_index < 0:
        raise ValueError(f"layer_index must be >= 0. Received: {layer_index}")
    return list(range(max(STEM, layer_index - MAX_INPUT_DISTANCE), layer_index))


def skip_candidates(layer_index: int) -> list[int]:
    """The earlier layers whose outputs layer `layer_index` may add (0 .. i-1)."""
    if layer_index < 0:
        raise ValueError(f"layer_index must be >= 0. Received: {layer_index}")
    return list(range(layer_index))


@dataclasses.dataclass(frozen=True)
class LayerChoice:
    """The choices of one layer: its operation, its input and its skip sources."""

    op: str
    input: int
    skips: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class TextArchitecture:
    """A TextNAS architecture: one `LayerChoice` per layer, validated on creation."""

    layers: tuple[LayerChoice, ...]

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        validate_layers(self.layers)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(layer.op for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "layers": [
                {"op": layer.op, "input": layer.input, "skips": list(layer.skips)}
                for layer in self.layers
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Any) -> "TextArchitecture":
        return cls(layers=tuple(_parse_layers(data)))

    @classmethod
    def from_json(cls, text: str) -> "TextArchitecture":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"architecture is not valid JSON: {e}") from None
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the JSON form to `path` (via a temporary file, then renamed)."""
        path = os.fspath(path)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.to_json() + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TextArchitecture":
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            return cls.from_json(text)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: {e}") from None

    def describe(self) -> str:
        """One line per layer, for logs."""
        lines = []
        for i, layer in enumerate(self.layers):
            src = "stem" if layer.input == STEM else f"layer {layer.input}"
            skips = ",".join(str(s) for s in layer.skips) or "-"
            lines.append(f"layer {i:2d}: {layer.op:<15s} input={src:<9s} skips={skips}")
        return "\n".join(lines)


def _parse_layers(data: Any) -> list[LayerChoice]:
    if not isinstance(data, Mapping):
        raise ValueError(
            f"architecture must be a JSON object. Received: {type(data).__name__}"
        )
    fmt = data.get("format", FORMAT)
    if fmt != FORMAT:
        raise ValueError(f"format must be {FORMAT!r}. Received: {fmt!r}")
    version = data.get("version", VERSION)
    if version != VERSION:
        raise ValueError(f"version must be {VERSION}. Received: {version!r}")
    if "layers" not in data:
        raise ValueError(f"architecture needs a 'layers' list. Received keys: {sorted(data)}")
    raw_layers = data["layers"]
    if not isinstance(raw_layers, list):
        raise ValueError(f"layers must be a list. Received: {type(raw_layers).__name__}")
    layers = []
    for i, raw in enumerate(raw_layers):
        where = f"layers[{i}]"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where} must be an object. Received: {raw!r}")
        unknown = set(raw) - {"op", "input", "skips"}
        if unknown:
            raise ValueError(
                f"{where} has unknown fields {sorted(unknown)}; expected op, input, skips."
            )
        for key in ("op", "input"):
            if key not in raw:
                raise ValueError(f"{where}.{key} is missing. Received: {dict(raw)}")
        skips = raw.get("skips", [])
        if not isinstance(skips, list):
            raise ValueError(f"{where}.skips must be a list. Received: {skips!r}")
        layers.append(LayerChoice(op=raw["op"], input=raw["input"], skips=tuple(skips)))
    return layers


def validate_layers(layers: Sequence[LayerChoice]) -> None:
    """Raises ValueError naming the first offending field."""
    if not layers:
        raise ValueError("layers must hold at least one layer. Received: []")
    for i, layer in enumerate(layers):
        where = f"layers[{i}]"
        if not isinstance(layer, LayerChoice):
            raise ValueError(f"{where} must be a LayerChoice. Received: {layer!r}")
        if layer.op not in OPS:
            raise ValueError(f"{where}.op must be one of {OPS}. Received: {layer.op!r}")
        allowed = input_candidates(i)
        if isinstance(layer.input, bool) or not isinstance(layer.input, int) or (
            layer.input not in allowed
        ):
            raise ValueError(
                f"{where}.input must be an integer in {allowed} (-1 = the stem). "
                f"Received: {layer.input!r}"
            )
        skips = layer.skips
        for s in skips:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < i:
                raise ValueError(
                    f"{where}.skips must hold earlier layer indices in [0, {i - 1}]. "
                    f"Received: {list(skips)}"
                )
        if list(skips) != sorted(set(skips)):
            raise ValueError(
                f"{where}.skips must be sorted and without repeats. Received: {list(skips)}"
            )


def chain_architecture(ops: Sequence[str]) -> TextArchitecture:
    """Each layer reads the previous one, no skips."""
    return TextArchitecture(
        layers=tuple(LayerChoice(op=op, input=i - 1, skips=()) for i, op in enumerate(ops))
    )


#: The 24 operations of the architecture published with the TextNAS paper.
TEXTNAS_PAPER_OPS = (
    "max_pool_3", "self_attention", "conv_7", "bi_gru", "conv_3", "conv_3",
    "conv_1", "bi_gru", "max_pool_3", "max_pool_3", "self_attention", "avg_pool_3",
    "conv_3", "conv_5", "conv_1", "conv_7", "conv_5", "avg_pool_3",
    "conv_7", "conv_7", "max_pool_3", "self_attention", "self_attention", "conv_7",
)  # fmt: skip

PRESETS: dict[str, TextArchitecture] = {
    "textnas_paper": chain_architecture(TEXTNAS_PAPER_OPS),
}


def random_architecture(
    num_layers: int, seed: int, skip_probability: float = 0.5
) -> TextArchitecture:
    """Samples uniformly from the space (each skip kept with `skip_probability`).

    With the default 0.5 every architecture of the space is equally likely.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1. Received: {num_layers}")
    rng = random.Random(seed)
    layers = []
    for i in range(num_layers):
        skips = tuple(j for j in skip_candidates(i) if rng.random() < skip_probability)
        layers.append(
            LayerChoice(op=rng.choice(OPS), input=rng.choice(input_candidates(i)), skips=skips)
        )
    return TextArchitecture(layers=tuple(layers))


def cap_skips(kept: Sequence[int], gates: Sequence[float], max_skips: int = 0) -> tuple[int, ...]:
    """At most `max_skips` (> 0) of the `kept` skip sources: those with the largest gates.

    Our derivation option (not the paper's): with sigmoid gates, "gate > 0.5"
    alone keeps about half of all skips when the gates barely move. Ties go to
    the earlier layer. `max_skips` = 0 keeps all of `kept`.

    Args:
        kept: skip-source indices already past the threshold.
        gates: the gate value of every candidate source, indexed by source.
        max_skips: the cap; 0 = none.

    Returns:
        the kept indices, sorted.
    """
    if max_skips < 0:
        raise ValueError(f"max_skips must be >= 0. Received: {max_skips}")
    kept = sorted(int(j) for j in kept)
    if max_skips and len(kept) > max_skips:
        kept = sorted(sorted(kept, key=lambda j: (-float(gates[j]), j))[:max_skips])
    return tuple(kept)


def derive_architecture(probabilities: Sequence[Mapping[str, Any]], max_skips: int = 0,
                        skip_threshold: float = 0.5) -> TextArchitecture:
    """The discrete architecture of a search's `probabilities.json`.

    Per layer: the op of largest probability, the input of largest
    probability, the skips whose gate exceeds `skip_threshold`, at most
    `max_skips` of them (`cap_skips`). This is the searcher's own derivation,
    so a finished search can be derived again with another cap.

    Args:
        probabilities: per layer {"op": {name: p}, "input": {index: p},
            "skips": {index: gate}} (string or int keys).
        max_skips: cap on skips per layer (0 = none).
        skip_threshold: gate value a skip must exceed.
    """
    layers = []
    for i, layer in enumerate(probabilities):
        op_p = layer["op"]
        op = max(OPS, key=lambda name: (op_p[name], -OPS.index(name)))
        inputs = {int(k): float(v) for k, v in layer["input"].items()}
        source = max(inputs, key=lambda k: (inputs[k], -k))
        gates = {int(k): float(v) for k, v in layer.get("skips", {}).items()}
        kept = [j for j, g in gates.items() if g > skip_threshold]
        dense = [gates.get(j, 0.0) for j in range(i)]
        layers.append(LayerChoice(op=op, input=source, skips=cap_skips(kept, dense, max_skips)))
    return TextArchitecture(layers=tuple(layers))


def load_architecture(name_or_path: str) -> TextArchitecture:
    """A preset name, `random:<seed>[:<num_layers>]` (default 24 layers), or a JSON path."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    if name_or_path.startswith("random:"):
        parts = name_or_path.split(":")
        try:
            seed = int(parts[1])
            num_layers = int(parts[2]) if len(parts) > 2 else 24
            if len(parts) > 3:
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(
                "architecture 'random:<seed>[:<num_layers>]' needs integers. "
                f"Received: {name_or_path!r}"
            ) from None
        return random_architecture(num_layers, seed)
    if not os.path.exists(name_or_path):
        raise ValueError(
            f"architecture must be a preset {sorted(PRESETS)}, 'random:<seed>[:<layers>]' "
            f"or an existing JSON file. Received: {name_or_path!r}"
        )
    return TextArchitecture.load(name_or_path)


def space_size(num_layers: int = 24) -> float:
    """Number of architectures of the space with `num_layers` layers (a float)."""
    total = 1.0
    for i in range(num_layers):
        total *= len(OPS) * len(input_candidates(i)) * 2.0 ** len(skip_candidates(i))
    return total
