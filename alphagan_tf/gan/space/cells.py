"""The generator cell of the AlphaGAN space, as a search cell and a fixed cell.

One cell, input x [B, H, W, C], four nodes (spec table; C = gf everywhere):

    node1 = up[0](x)                  [B, 2H, 2W, C]   (also the cell's skip feature)
    node3 = up[1](x)                  [B, 2H, 2W, C]
    node2 = normal[0](node1)
    node4 = normal[1](node2) + normal[2](node3) + sum_k skip[k](skip_inputs[k])

The cell returns (node4, node1). Cross-cell skip edges are "up"-kind edges owned
by the receiving cell: cell 2 has one (cell 1's node1, x2), cell 3 has two
(cell 1's node1 x4, cell 2's node1 x2); their scales are given by
`skip_scales` and their inputs are passed to `call` in that order.

`SearchCell` puts a `MixedOp` on every edge (alphas inside); `FixedCell` puts
only the op a `CellGenotype` chose. Both share the wiring (`_CellBase`).

`GeneratorStem` (Dense -> [bw, bw, gf]) and `GeneratorHead` (BN, ReLU, conv3x3
to RGB, tanh) are the parts around the cells, shared by both generators. The
stem's Dense uses glorot_uniform like the convs (the reference leaves its
Linear at PyTorch's default init); its output is reshaped channels-last, which
only permutes the Dense units relative to PyTorch's [gf, bw, bw].
"""

from __future__ import annotations

from typing import Sequence

import keras

from alphagan_tf.gan.space import operations
from alphagan_tf.gan.space.genotypes import (
    NORMAL_OPS,
    NUM_NORMAL_EDGES,
    NUM_UP_EDGES,
    UP_OPS,
    CellGenotype,
)
from alphagan_tf.gan.space.normal_mixed_op import NormalMixedOp
from alphagan_tf.nas.architecture import ArchitectureLayer
from alphagan_tf.nas.mixed_op import MixedOp
from alphagan_tf.nas.tracking import track_layers


def _cell_forward(up_edges, normal_edges, skip_edges, x, skip_inputs, training, choices=None):
    skip_inputs = list(skip_inputs or [])
    if len(skip_inputs) != len(skip_edges):
        raise ValueError(
            f"This cell has {len(skip_edges)} skip edge(s) and needs as many skip "
            f"inputs. Received: {len(skip_inputs)}"
        )

    def run(index, edge, inputs):
        """Edge `index` (up, normal, then skip edges) on `inputs`; the sampled path if chosen."""
        if choices is None:
            return edge(inputs, training=training)
        return edge(inputs, training=training, choice=choices[index])

    normal, skip = NUM_UP_EDGES, NUM_UP_EDGES + NUM_NORMAL_EDGES  # first index of each kind
    node1 = run(0, up_edges[0], x)
    node3 = run(1, up_edges[1], x)
    node2 = run(normal, normal_edges[0], node1)
    node4 = run(normal + 1, normal_edges[1], node2) + run(normal + 2, normal_edges[2], node3)
    for k, (edge, feature) in enumerate(zip(skip_edges, skip_inputs)):
        node4 = node4 + run(skip + k, edge, feature)
    return node4, node1


def _skip_shapes(input_shape, skip_scales):
    """Shapes of the skip inputs given the cell input's shape (for build())."""
    b, h, w, c = input_shape
    return [(b, 2 * h // s, 2 * w // s, c) for s in skip_scales]


class _CellBase:
    """The wiring both cells share; subclasses set channels, skip_scales and the edge lists."""

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        b, h, w, _ = input_shape
        node_shape = (b, 2 * h, 2 * w, self.channels)
        for edge in self.up_edges:
            edge.build(input_shape)
        for edge in self.normal_edges:
            edge.build(node_shape)
        for edge, shape in zip(self.skip_edges, _skip_shapes(input_shape, self.skip_scales)):
            edge.build(shape)

    @property
    def cell_edges(self) -> list:
        """The cell's own edges: up[0], up[1], normal[0], normal[1], normal[2]."""
        return self.up_edges + self.normal_edges

    def call(self, inputs, skip_inputs=None, training=None, choices=None):
        return _cell_forward(
            self.up_edges, self.normal_edges, self.skip_edges, inputs, skip_inputs, training,
            choices,
        )

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        shape = (b, 2 * h, 2 * w, self.channels)
        return shape, shape


@keras.saving.register_keras_serializable(package="alphagan_tf")
class SearchCell(_CellBase, ArchitectureLayer):
    """A cell of the supernet: a `MixedOp` on each of its edges.

    Args:
        channels: gf, channels of every node.
        skip_scales: upsampling factor of each cross-cell skip edge this cell
            receives ((), (2,) or (4, 2) in the AlphaGAN generator).
        affine: batch-norm affine parameters of the sep convs (False in search).
        alpha_stddev: alpha init, 1e-3 * N(0, 1).
        fuse_convs: normal edges run their plain convs as one convolution
            (`NormalMixedOp`; the same function, less work).
        synchronized_bn: the sep convs' batch statistics over all replicas of a
            distribution strategy.

    Call args:
        inputs: float32 [B, H, W, channels].
        skip_inputs: list of float32 [B, 2H/s, 2W/s, channels], one per skip scale s.
        training: batch-norm mode.
        choices: None (every edge its softmax-weighted sum) or an int32 tensor
            [5 + skip edges]: the candidate each edge runs alone (up[0], up[1],
            normal[0..2], then the skip edges; `MixedOp`'s sampled path).

    Returns:
        (node4, node1): float32 [B, 2H, 2W, channels] each.

    Attributes:
        up_edges, normal_edges, skip_edges: the `MixedOp`s, in edge order.
    """

    def __init__(
        self,
        channels: int,
        skip_scales: Sequence[int] = (),
        affine: bool = False,
        alpha_stddev: float = 1e-3,
        fuse_convs: bool = True,
        synchronized_bn: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.skip_scales = tuple(int(s) for s in skip_scales)
        self.affine = bool(affine)
        self.alpha_stddev = float(alpha_stddev)
        self.fuse_convs = bool(fuse_convs)
        self.synchronized_bn = bool(synchronized_bn)
        # Lists of layers are invisible to tf.train.Checkpoint: see nas/tracking.py.
        self.up_edges = track_layers(
            self, "up", [self._mixed_up(2, f"up{i}") for i in range(NUM_UP_EDGES)]
        )
        self.normal_edges = track_layers(self, "normal", [
            NormalMixedOp(
                [
                    operations.make_normal_op(
                        n, self.channels, self.affine, synchronized_bn=self.synchronized_bn
                    )
                    for n in NORMAL_OPS
                ],
                NORMAL_OPS,
                alpha_stddev=self.alpha_stddev,
                fuse_convs=self.fuse_convs,
                name=f"normal{i}",
            )
            for i in range(NUM_NORMAL_EDGES)
        ])
        self.skip_edges = track_layers(
            self, "skip", [self._mixed_up(s, f"skip{i}") for i, s in enumerate(self.skip_scales)]
        )

    def _mixed_up(self, scale: int, name: str) -> MixedOp:
        return MixedOp(
            [operations.make_up_op(n, self.channels, scale) for n in UP_OPS],
            UP_OPS,
            alpha_stddev=self.alpha_stddev,
            name=name,
        )

    @property
    def arch_variables(self) -> list:
        """Alphas of up[0], up[1], normal[0..2], then of the skip edges."""
        return [e.alpha for e in self.cell_edges + self.skip_edges]

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "skip_scales": list(self.skip_scales),
            "affine": self.affine,
            "alpha_stddev": self.alpha_stddev,
            "fuse_convs": self.fuse_convs,
            "synchronized_bn": self.synchronized_bn,
        }


@keras.saving.register_keras_serializable(package="alphagan_tf")
class FixedCell(_CellBase, keras.layers.Layer):
    """A cell of a derived generator: only the chosen op on each edge.

    Args:
        channels: gf, channels of every node.
        normal_ops: 3 names of `NORMAL_OPS` (normal[0..2]).
        up_ops: 2 names of `UP_OPS` (up[0..1]).
        skip_ops: one name of `UP_OPS` per skip edge.
        skip_scales: upsampling factor of each skip edge.
        synchronized_bn: the sep convs' batch statistics over all replicas of a
            distribution strategy.

    Call args / returns: as `SearchCell`.
    """

    def __init__(
        self,
        channels: int,
        normal_ops: Sequence[str],
        up_ops: Sequence[str],
        skip_ops: Sequence[str] = (),
        skip_scales: Sequence[int] = (),
        synchronized_bn: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # Validates the names (and raises an error naming the field).
        CellGenotype(normal=tuple(normal_ops), up=tuple(up_ops))
        if len(skip_ops) != len(skip_scales):
            raise ValueError(
                "FixedCell needs one skip op per skip scale. "
                f"Received: skip_ops={list(skip_ops)}, skip_scales={list(skip_scales)}"
            )
        self.channels = int(channels)
        self.normal_ops = tuple(normal_ops)
        self.up_ops = tuple(up_ops)
        self.skip_ops = tuple(skip_ops)
        self.skip_scales = tuple(int(s) for s in skip_scales)
        self.synchronized_bn = bool(synchronized_bn)
        # Lists of layers are invisible to tf.train.Checkpoint: see nas/tracking.py.
        self.up_edges = track_layers(self, "up", [
            operations.make_up_op(n, self.channels, 2, layer_name=f"up{i}_{n}")
            for i, n in enumerate(self.up_ops)
        ])
        self.normal_edges = track_layers(self, "normal", [
            operations.make_normal_op(
                n, self.channels, affine=True, synchronized_bn=self.synchronized_bn,
                layer_name=f"normal{i}_{n}",
            )
            for i, n in enumerate(self.normal_ops)
        ])
        self.skip_edges = track_layers(self, "skip", [
            operations.make_up_op(n, self.channels, s, layer_name=f"skip{i}_{n}")
            for i, (n, s) in enumerate(zip(self.skip_ops, self.skip_scales))
        ])

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "normal_ops": list(self.normal_ops),
            "up_ops": list(self.up_ops),
            "skip_ops": list(self.skip_ops),
            "skip_scales": list(self.skip_scales),
            "synchronized_bn": self.synchronized_bn,
        }


# -- The parts around the cells (shared by the search and the fixed generator) --


@keras.saving.register_keras_serializable(package="alphagan_tf")
class GeneratorStem(keras.layers.Layer):
    """z -> Dense(bw * bw * gf) -> reshape [bw, bw, gf].

    Args:
        channels: gf.
        bottom_width: bw, the side of the first feature map (4 for 32x32, 6 for 48x48).

    Call args:
        inputs: float32 [B, latent_dim]. Returns float32 [B, bw, bw, gf].
    """

    def __init__(self, channels: int, bottom_width: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.bottom_width = int(bottom_width)
        self.dense = keras.layers.Dense(
            self.bottom_width**2 * self.channels,
            kernel_initializer=operations.KERNEL_INIT,
            name="dense",
        )

    def build(self, input_shape):
        self.dense.build(tuple(input_shape))

    def call(self, inputs, training=None):
        x = self.dense(inputs)
        bw = self.bottom_width
        return keras.ops.reshape(x, (-1, bw, bw, self.channels))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.bottom_width, self.bottom_width, self.channels)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "bottom_width": self.bottom_width,
        }


@keras.saving.register_keras_serializable(package="alphagan_tf")
class GeneratorHead(keras.layers.Layer):
    """BN (affine) -> ReLU -> Conv2D 3x3 to 3 channels (bias) -> tanh.

    Args:
        synchronized_bn: batch statistics over all replicas of a distribution strategy.

    Call args:
        inputs: float32 [B, H, W, gf]. Returns images float32 [B, H, W, 3] in [-1, 1].
    """

    def __init__(self, synchronized_bn: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.synchronized_bn = bool(synchronized_bn)
        self.norm = operations.batch_norm(affine=True, name="bn", synchronized=self.synchronized_bn)
        self.conv = keras.layers.Conv2D(
            3,
            3,
            padding="same",
            use_bias=True,
            kernel_initializer=operations.KERNEL_INIT,
            name="to_rgb",
        )

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.norm.build(input_shape)
        self.conv.build(input_shape)

    def call(self, inputs, training=None):
        x = keras.ops.relu(self.norm(inputs, training=training))
        return keras.ops.tanh(self.conv(x))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (3,)

    def get_config(self):
        return {**super().get_config(), "synchronized_bn": self.synchronized_bn}
