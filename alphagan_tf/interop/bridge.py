"""The weight bridge: our Keras networks <-> the authors' PyTorch state dicts, by name.

The authors' implementation (PyTorch; `models/model_search_gan.py` and
`models/alphaGAN_network.py`) names every parameter and buffer by its module
path. For each of our networks this module lists, per PyTorch name, the Keras
variable that holds the same tensor and the layout conversion between them
(`layout.py`), so that a state dict moves either way:

| our network                   | the authors' module                              |
|-------------------------------|--------------------------------------------------|
| `SearchGenerator` (supernet)  | `model_search_gan.Network_gen_Auto` (+ its alphas) |
| `Generator` (fixed genotype)  | `alphaGAN_network.Network_gen_Auto`              |
| `Discriminator`               | `alphaGAN_network.Discriminator` (retraining) and `model_search_gan.Discriminator` (search): one structure |

State dicts here are plain `{name: numpy array}` mappings (no torch needed;
`checkpoint.py` reads the authors' files into that form). What is carried:
weights and biases, batch-norm statistics (`running_mean` / `running_var`;
`num_batches_tracked` is accepted and ignored on import, written as 0 on export),
spectral-norm vectors (`weight_u`, `weight_v` with `weight_orig`) and, for the
supernet, the alphas under the names of the authors' attributes
(`alphas_normal_1` [3, 6] ... `alphas_skip_3` [2, 3]; they are not in a PyTorch
state dict, see `search_generator_alphas`).

Loading checks everything before it writes anything: missing names, unexpected
names and wrong shapes are reported together in one `StateDictMismatchError`.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import keras
import numpy as np

from alphagan_tf.gan.space.discriminator import Discriminator
from alphagan_tf.gan.space.generator import Generator
from alphagan_tf.gan.space.operations import ReLUConv, SepConv, TransposedConvUp
from alphagan_tf.gan.space.search_generator import SearchGenerator
from alphagan_tf.gan.space.spectral_norm import SpectralConv2D, SpectralDense
from alphagan_tf.interop import layout
from alphagan_tf.interop.layout import Layout

IGNORED_SUFFIXES = (".num_batches_tracked",)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One PyTorch tensor and the Keras variable that holds it."""

    torch_name: str
    variable: keras.Variable
    layout: Layout

    @property
    def torch_shape(self) -> tuple[int, ...]:
        return tuple(self.layout.to_torch(np.zeros(self.variable.shape, np.float32)).shape)


class StateDictMismatchError(ValueError):
    """A state dict does not fit the network: every problem named at once."""

    def __init__(
        self,
        source: str,
        network: str,
        missing: list[str],
        unexpected: list[str],
        wrong_shape: list[tuple[str, tuple, tuple]],
    ):
        self.missing, self.unexpected, self.wrong_shape = missing, unexpected, wrong_shape
        lines = [f"{source} does not fit {network}:"]
        if missing:
            lines.append(f"  missing ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): {', '.join(unexpected)}")
        for name, got, want in wrong_shape:
            lines.append(f"  wrong shape: {name}: expected {want}, received {got}")
        super().__init__("\n".join(lines))


# -- names of the parts -----------------------------------------------------------


def _batch_norm(prefix: str, bn: keras.layers.BatchNormalization) -> list[Entry]:
    entries = []
    if bn.scale:
        entries.append(Entry(f"{prefix}.weight", bn.gamma, layout.SAME))
    if bn.center:
        entries.append(Entry(f"{prefix}.bias", bn.beta, layout.SAME))
    entries += [
        Entry(f"{prefix}.running_mean", bn.moving_mean, layout.SAME),
        Entry(f"{prefix}.running_var", bn.moving_variance, layout.SAME),
    ]
    return entries


def _conv(prefix: str, conv: keras.layers.Conv2D) -> list[Entry]:
    entries = [Entry(f"{prefix}.weight", conv.kernel, layout.CONV)]
    if conv.use_bias:
        entries.append(Entry(f"{prefix}.bias", conv.bias, layout.SAME))
    return entries


def _normal_op(prefix: str, op: keras.layers.Layer) -> list[Entry]:
    """conv_kxk = Sequential(ReLU, Conv2d); sep_conv = .op = (ReLU, dw, pw, BN) x 2."""
    if isinstance(op, ReLUConv):
        return _conv(f"{prefix}.1", op.conv)
    if isinstance(op, SepConv):
        entries = []
        for half in range(2):
            base = 4 * half  # op.0 ReLU, op.1 dw, op.2 pw, op.3 BN, op.4 ReLU, op.5 ...
            entries.append(Entry(f"{prefix}.op.{base + 1}.weight", op.depthwise[half].kernel,
                                 layout.DEPTHWISE))
            entries.append(Entry(f"{prefix}.op.{base + 2}.weight", op.pointwise[half].kernel,
                                 layout.CONV))
            entries += _batch_norm(f"{prefix}.op.{base + 3}", op.norms[half])
        return entries
    raise TypeError(f"Not a normal op of this space: {op!r}")


def _up_op(prefix: str, op: keras.layers.Layer) -> list[Entry]:
    """deconv = deconv_wrapper(._func: ConvTranspose2d); nearest / bilinear have no weights."""
    if isinstance(op, TransposedConvUp):
        return [
            Entry(f"{prefix}._func.weight", op.deconv.kernel, layout.DECONV),
            Entry(f"{prefix}._func.bias", op.deconv.bias, layout.SAME),
        ]
    if op.weights:
        raise TypeError(f"Not an up op of this space: {op!r}")
    return []


def _stem_and_head(generator) -> tuple[list[Entry], list[Entry]]:
    dense = generator.stem.dense
    stem = [
        Entry("l1.weight", dense.kernel, layout.stem_dense_kernel(generator.gf, generator.bottom_width)),
        Entry("l1.bias", dense.bias, layout.stem_dense_bias(generator.gf, generator.bottom_width)),
    ]
    head = _batch_norm("to_rgb.0", generator.head.norm) + _conv("to_rgb.2", generator.head.conv)
    return stem, head


def search_generator_entries(generator: SearchGenerator) -> list[Entry]:
    """The supernet's weights and buffers by the names of `model_search_gan.Network_gen_Auto`.

    Needs the authors' normal-op list `PRIMITIVES_NORMAL_GEN_wo_skip_none_sep` and
    up-op list `PRIMITIVES_UP` (the ones their README searches with), whose orders
    are ours (`NORMAL_OPS`, `UP_OPS`).
    """
    stem, head = _stem_and_head(generator)
    entries = list(stem)
    for c, cell in enumerate(generator.gen_cells, start=1):
        for kind, edges, make in (
            ("_up_ops", cell.up_edges, _up_op),
            ("_normal_ops", cell.normal_edges, _normal_op),
            ("_mixed_ops_prev", cell.skip_edges, _up_op),
        ):
            for i, mixed in enumerate(edges):
                for j, candidate in enumerate(mixed.candidates):
                    entries += make(f"cell{c}.{kind}.{i}._ops.{j}", candidate)
    return entries + head


def generator_entries(generator: Generator) -> list[Entry]:
    """A fixed generator's weights and buffers by the names of `alphaGAN_network.Network_gen_Auto`."""
    stem, head = _stem_and_head(generator)
    entries = list(stem)
    for c, cell in enumerate(generator.gen_cells, start=1):
        for kind, edges, make in (
            ("_up_ops", cell.up_edges, _up_op),
            ("_normal_ops", cell.normal_edges, _normal_op),
            ("_mixed_ops_prev", cell.skip_edges, _up_op),
        ):
            for i, op in enumerate(edges):
                entries += make(f"cell{c}.{kind}.{i}", op)
    return entries + head


def _spectral(prefix: str, layer: keras.layers.Layer) -> list[Entry]:
    if not isinstance(layer, (SpectralConv2D, SpectralDense)):
        raise TypeError(
            "The bridge maps the discriminator with spectral_norm='reference' (PyTorch's "
            f"semantics). Received a {type(layer).__name__} at {prefix}."
        )
    kernel_layout = layout.DENSE if isinstance(layer, SpectralDense) else layout.CONV
    entries = [
        Entry(f"{prefix}.weight_orig", layer.kernel, kernel_layout),
        Entry(f"{prefix}.weight_u", layer.u, layout.vector(layer.u.shape)),
        Entry(f"{prefix}.weight_v", layer.v, layout.sn_v(layer.kernel.shape)),
    ]
    if layer.use_bias:
        entries.append(Entry(f"{prefix}.bias", layer.bias, layout.SAME))
    return entries


def discriminator_entries(discriminator: Discriminator) -> list[Entry]:
    """The discriminator by the names of the authors' `Discriminator` (search and retraining)."""
    entries = []
    for b, block in enumerate(
        (discriminator.block1, discriminator.block2, discriminator.block3, discriminator.block4),
        start=1,
    ):
        entries += _spectral(f"block{b}.c1", block.conv1)
        entries += _spectral(f"block{b}.c2", block.conv2)
        if block.shortcut is not None:
            entries += _spectral(f"block{b}.c_sc", block.shortcut)
    return entries + _spectral("l5", discriminator.linear)


def entries_for(model: keras.Model) -> list[Entry]:
    """The entries of any of the three networks."""
    if isinstance(model, SearchGenerator):
        return search_generator_entries(model)
    if isinstance(model, Generator):
        return generator_entries(model)
    if isinstance(model, Discriminator):
        return discriminator_entries(model)
    raise TypeError(
        "The bridge maps SearchGenerator, Generator and Discriminator. "
        f"Received: {type(model).__name__}"
    )


# -- alphas -----------------------------------------------------------------------


def search_generator_alphas(generator: SearchGenerator) -> dict[str, list[keras.Variable]]:
    """The authors' alpha attributes and the rows (our per-edge alphas) they hold.

    `alphas_normal_c` [3, 6] and `alphas_up_c` [2, 3] for cell c = 1..3,
    `alphas_skip_2` [1, 3] and `alphas_skip_3` [2, 3] (row 0: cell 1 x4, row 1:
    cell 2 x2): each row is one of our edges' alpha.
    """
    alphas: dict[str, list[keras.Variable]] = {}
    for c, cell in enumerate(generator.gen_cells, start=1):
        alphas[f"alphas_normal_{c}"] = [e.alpha for e in cell.normal_edges]
    for c, cell in enumerate(generator.gen_cells, start=1):
        alphas[f"alphas_up_{c}"] = [e.alpha for e in cell.up_edges]
    alphas["alphas_skip_2"] = [e.alpha for e in generator.gen_cells[1].skip_edges]
    alphas["alphas_skip_3"] = [e.alpha for e in generator.gen_cells[2].skip_edges]
    return alphas


# -- moving state dicts ---------------------------------------------------------


def state_dict(model: keras.Model, include_alphas: bool = True) -> dict[str, np.ndarray]:
    """Our network as the authors' state dict ({name: array of the variable's dtype}).

    Batch norms get `num_batches_tracked` = 0 (unused with PyTorch's default
    momentum), so `module.load_state_dict(...)` takes the dict as it is (convert
    with `torch.from_numpy`). A supernet's alphas are included under their
    attribute names (`search_generator_alphas`) when `include_alphas`.
    """
    out: dict[str, np.ndarray] = {}
    for entry in entries_for(model):
        out[entry.torch_name] = np.ascontiguousarray(entry.layout.to_torch(np.asarray(entry.variable)))
        if entry.torch_name.endswith(".running_var"):
            out[entry.torch_name[: -len("running_var")] + "num_batches_tracked"] = np.array(
                0, np.int64
            )
    if include_alphas and isinstance(model, SearchGenerator):
        for name, rows in search_generator_alphas(model).items():
            out[name] = np.stack([np.asarray(v) for v in rows])
    return out


def load_state_dict(
    model: keras.Model,
    tensors: Mapping[str, np.ndarray],
    source: str = "the state dict",
    alphas: str = "optional",
) -> None:
    """Assigns the authors' tensors to our network, after checking all of them.

    Args:
        model: a built SearchGenerator, Generator or Discriminator.
        tensors: {PyTorch name: array} (a state dict, converted to numpy).
        source: what `tensors` came from, for the error message (e.g. a file name).
        alphas: supernet only: "optional" (assign the alpha attributes present),
            "required" (all eight must be present) or "ignore".

    Raises:
        StateDictMismatchError: names missing or unexpected, or shapes wrong,
            all listed; nothing has been assigned.
    """
    entries = entries_for(model)
    alpha_rows = search_generator_alphas(model) if isinstance(model, SearchGenerator) else {}
    expected = {e.torch_name: e for e in entries}
    missing = [name for name in expected if name not in tensors]
    unexpected, wrong_shape = [], []
    if alphas == "required":
        missing += [name for name in alpha_rows if name not in tensors]
    for name, value in tensors.items():
        shape = tuple(np.shape(value))
        if name in expected:
            want = expected[name].torch_shape
            if shape != want:
                wrong_shape.append((name, shape, want))
        elif name in alpha_rows and alphas != "ignore":
            rows = alpha_rows[name]
            want = (len(rows), int(rows[0].shape[0]))
            if shape != want:
                wrong_shape.append((name, shape, want))
        elif not name.endswith(IGNORED_SUFFIXES) and name not in alpha_rows:
            unexpected.append(name)
    if missing or unexpected or wrong_shape:
        raise StateDictMismatchError(source, _describe(model), missing, unexpected, wrong_shape)
    for name, entry in expected.items():
        entry.variable.assign(
            entry.layout.to_keras(np.asarray(tensors[name])).astype(entry.variable.dtype)
        )
    if alphas != "ignore":
        for name, rows in alpha_rows.items():
            if name in tensors:
                for row, variable in zip(np.asarray(tensors[name]), rows):
                    variable.assign(row.astype(variable.dtype))


def _describe(model: keras.Model) -> str:
    if isinstance(model, (SearchGenerator, Generator)):
        what = "the supernet generator" if isinstance(model, SearchGenerator) else (
            f"the generator of genotype {model.genotype.to_json()}"
        )
        return f"{what} (gf={model.gf}, latent_dim={model.latent_dim}, bottom_width={model.bottom_width})"
    return f"the discriminator (df={model.df})"


def torch_names(model: keras.Model) -> list[str]:
    """Every name `state_dict(model)` writes (without num_batches_tracked and alphas)."""
    return [e.torch_name for e in entries_for(model)]


__all__ = [
    "Entry",
    "StateDictMismatchError",
    "discriminator_entries",
    "generator_entries",
    "load_state_dict",
    "search_generator_alphas",
    "search_generator_entries",
    "state_dict",
    "torch_names",
]
