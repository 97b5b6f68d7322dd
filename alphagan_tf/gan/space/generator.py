"""The fixed generator derived from a genotype, and the supernet -> fixed transfer.

`Generator` has the wiring of the supernet (`cell_generator.CellGenerator`) with only the
chosen op on each edge and no architecture weight anywhere: it is the only
network that is retrained and exported. The separable convs' batch norms are
affine here (gamma, beta), as in DARTS' derived networks.

`transfer_search_weights(search_generator, generator)` copies the weights the
two networks share: the stem's Dense, on every edge the weights of the
generator's chosen candidate in the supernet's mixed op, and the head's BN and
conv. The supernet's sep-conv batch norms have no affine parameters, so the
generator's get gamma = 1, beta = 0 and the supernet's moving statistics.

Equivalence (tested): after the transfer, the supernet with one-hot alphas on
the generator's genotype (`SearchGenerator.set_alphas_from_genotype`) computes
the same images as the generator, in inference mode (training=False: moving
statistics) and in training mode (batch statistics; gamma 1 and beta 0 make the
affine norm the identity map of the non-affine one).
"""

from __future__ import annotations

from typing import Mapping

import keras
import tensorflow as tf

from alphagan_tf.gan.space.cell_generator import CellGenerator
from alphagan_tf.gan.space.cells import FixedCell, GeneratorHead
from alphagan_tf.gan.space.genotypes import EDGES, SKIP_2_SCALES, SKIP_3_SCALES, Genotype
from alphagan_tf.gan.space.operations import SepConv
from alphagan_tf.utils import precision as precision_lib


@keras.saving.register_keras_serializable(package="alphagan_tf")
class Generator(CellGenerator):
    """A generator of the AlphaGAN space with one op per edge (no alpha).

    Args:
        genotype: the chosen ops (a `Genotype` or its `to_dict()` form).
        gf: channels of every cell node (256).
        latent_dim: size of z (128).
        bottom_width: side of the first feature map: 4 -> 32x32, 6 -> 48x48.
        synchronized_bn: batch statistics over all replicas of a multi-replica
            `tf.distribute` strategy (build the generator under its scope), so
            that N replicas compute what one device computes on the global batch.
            The variables are the same either way (a checkpoint fits both).

    Call args:
        inputs: z, float32 [B, latent_dim].
        training: batch-norm mode.

    Returns:
        images: float32 [B, 8 * bottom_width, 8 * bottom_width, 3] in [-1, 1].
    """

    def __init__(
        self,
        genotype: Genotype | Mapping,
        gf: int = 256,
        latent_dim: int = 128,
        bottom_width: int = 4,
        synchronized_bn: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("name", "generator")
        super().__init__(gf=gf, latent_dim=latent_dim, bottom_width=bottom_width, **kwargs)
        if not isinstance(genotype, Genotype):
            genotype = Genotype.from_dict(genotype)
        self.genotype = genotype
        self.synchronized_bn = bool(synchronized_bn)
        skips = [((), ()), (genotype.skip_2, SKIP_2_SCALES), (genotype.skip_3, SKIP_3_SCALES)]
        self._set_cells(
            [
                FixedCell(
                    self.gf,
                    normal_ops=cell.normal,
                    up_ops=cell.up,
                    skip_ops=skip_ops,
                    skip_scales=skip_scales,
                    synchronized_bn=self.synchronized_bn,
                    name=f"cell{i + 1}",
                )
                for i, (cell, (skip_ops, skip_scales)) in enumerate(zip(genotype.cells, skips))
            ],
            GeneratorHead(synchronized_bn=self.synchronized_bn, name="head"),
        )

    @classmethod
    def from_genotype(
        cls,
        genotype: Genotype,
        gf: int = 256,
        latent_dim: int = 128,
        bottom_width: int = 4,
        **kwargs,
    ) -> "Generator":
        """The fixed generator of `genotype` (freshly initialised weights)."""
        return cls(genotype, gf=gf, latent_dim=latent_dim, bottom_width=bottom_width, **kwargs)

    def get_config(self):
        return {**super().get_config(), "genotype": self.genotype.to_dict(),
                "synchronized_bn": self.synchronized_bn}

    def in_precision(self, precision: str) -> "Generator":
        """A copy with the same weights that computes in `precision` (utils/precision.py).

        The copy's variables stay float32 (Keras' mixed policies), its convs, matmuls and
        batch norms run in `precision`, and it returns images in that dtype. Used to serve
        a float32-trained (or bfloat16-trained) generator in bfloat16 (`export
        --serving_precision=bfloat16`); the batch-norm moving statistics are copied too.
        """
        with precision_lib.dtype_policy(precision):
            copy = type(self).from_genotype(self.genotype, gf=self.gf, latent_dim=self.latent_dim,
                                            bottom_width=self.bottom_width,
                                            synchronized_bn=self.synchronized_bn,
                                            name=self.name)
        copy(tf.zeros([1, self.latent_dim]), training=False)
        copy.set_weights(self.get_weights())
        return copy


def _assign(target, source, what: str) -> None:
    if tuple(target.shape) != tuple(source.shape):
        raise ValueError(
            f"transfer_search_weights: {what} shapes differ. "
            f"Received: supernet {tuple(source.shape)}, generator {tuple(target.shape)}"
        )
    target.assign(source)


def _transfer_batch_norm(source, target, what: str) -> None:
    _assign(target.moving_mean, source.moving_mean, f"{what} moving mean")
    _assign(target.moving_variance, source.moving_variance, f"{what} moving variance")
    if target.scale:
        target.gamma.assign(source.gamma if source.scale else keras.ops.ones_like(target.gamma))
    if target.center:
        target.beta.assign(source.beta if source.center else keras.ops.zeros_like(target.beta))


def _transfer_layer(source, target, what: str) -> None:
    if isinstance(source, SepConv):
        for i in range(2):
            _assign(target.depthwise[i].kernel, source.depthwise[i].kernel, f"{what} depthwise{i}")
            _assign(target.pointwise[i].kernel, source.pointwise[i].kernel, f"{what} pointwise{i}")
            _transfer_batch_norm(source.norms[i], target.norms[i], f"{what} bn{i}")
        return
    if len(source.weights) != len(target.weights):
        raise ValueError(
            f"transfer_search_weights: {what} has {len(source.weights)} weights in the "
            f"supernet and {len(target.weights)} in the generator."
        )
    for s, t in zip(source.weights, target.weights):
        _assign(t, s, what)


def transfer_search_weights(search_generator, generator: Generator) -> None:
    """Copies the supernet's weights into a fixed generator of the same size.

    For every edge, the weights of the candidate the *generator's* genotype
    chose are copied (whatever the supernet's alphas say); plus the stem Dense
    and the head's BN and conv. Sep-conv batch norms: gamma = 1, beta = 0,
    moving statistics copied (the supernet's norms are not affine).

    Args:
        search_generator: a built `SearchGenerator`.
        generator: a built `Generator` with the same gf, latent_dim and bottom_width.

    Raises:
        ValueError: the two networks have different sizes.
    """
    for attr in ("gf", "latent_dim", "bottom_width"):
        if getattr(search_generator, attr) != getattr(generator, attr):
            raise ValueError(
                f"transfer_search_weights needs networks of one size. Received: "
                f"{attr}={getattr(search_generator, attr)} (supernet) vs "
                f"{getattr(generator, attr)} (generator)"
            )
    _transfer_layer(search_generator.stem.dense, generator.stem.dense, "stem dense")
    for (name, _), mixed, target, chosen in zip(
        EDGES, search_generator.mixed_ops(), generator.edge_layers(), generator.genotype.ops()
    ):
        source = mixed.candidates[mixed.op_names.index(chosen)]
        _transfer_layer(source, target, f"{name} ({chosen})")
    _transfer_batch_norm(search_generator.head.norm, generator.head.norm, "head bn")
    _transfer_layer(search_generator.head.conv, generator.head.conv, "head conv")
