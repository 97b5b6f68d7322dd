"""The AlphaGAN supernet generator: every edge a mixed op with its own alpha.

    z [B, latent] -> Dense -> [B, bw, bw, gf]
      -> cell 1 (x2) -> cell 2 (x2, + skip_2) -> cell 3 (x2, + skip_3)
      -> BN -> ReLU -> conv3x3 (3) -> tanh -> images [B, 8 bw, 8 bw, 3] in [-1, 1]

Architecture weights. One alpha vector per edge (a `MixedOp`'s logits; the
spec's per-cell alpha_normal [3, 6] / alpha_up [2, 3] and alpha_skip_2 [1, 3],
alpha_skip_3 [2, 3] are the rows of these), 18 in all, always listed in
`genotypes.EDGE_NAMES` order:

    cell1.up[0], cell1.up[1], cell1.normal[0], cell1.normal[1], cell1.normal[2],
    cell2.up[0], ..., cell2.normal[2], cell3.up[0], ..., cell3.normal[2],
    skip_2[0], skip_3[0], skip_3[1]

Normal edges have 6 logits (`NORMAL_OPS` order), up/skip edges 3 (`UP_OPS`
order). `arch_variables` lists them in that order; `weight_variables` is every
other trainable variable (separated by identity, never by name).

The separable convs' batch norms have no affine parameters here (DARTS); the
fixed `Generator` has them (see `generator.transfer_search_weights`). The
network builds all its variables in the constructor (input shape
[None, latent_dim] is known), so the lists above are complete before any call.
"""

from __future__ import annotations

import keras
import numpy as np

from alphagan_tf.gan.space.cell_generator import CellGenerator
from alphagan_tf.gan.space.cells import GeneratorHead, SearchCell
from alphagan_tf.gan.space.genotypes import (
    EDGES,
    SKIP_2_SCALES,
    SKIP_3_SCALES,
    Genotype,
    derive_genotype,
)
from alphagan_tf.nas.architecture import weight_variables_excluding
from alphagan_tf.nas.mixed_op import MixedOp


@keras.saving.register_keras_serializable(package="alphagan_tf")
class SearchGenerator(CellGenerator):
    """The continuous relaxation of the AlphaGAN generator space.

    Args:
        gf: channels of every cell node (256 in the paper).
        latent_dim: size of z (128).
        bottom_width: side of the first feature map: 4 -> 32x32 images, 6 -> 48x48.
        alpha_stddev: alpha init 1e-3 * N(0, 1).
        fuse_convs: each normal edge runs its three plain convs as one 5x5 conv
            with the alpha-weighted sum of their kernels (gan/space/normal_mixed_op.py:
            the same function and gradients, ~30% less work per normal edge).
        synchronized_bn: batch statistics over all replicas of a multi-replica
            `tf.distribute` strategy (build the generator under its scope), so
            that N replicas compute what one device computes on the global batch.

    Call args:
        inputs: z, float32 [B, latent_dim].
        training: batch-norm mode (batch statistics when True).
        architecture: None (every edge the softmax(alpha)-weighted sum of its
            candidates) or an int32 tensor [18]: one op index per edge in
            `genotypes.EDGE_NAMES` order, each edge running that op alone (the
            sampled path of weight-sharing searches; alphas unused, one trace for
            every architecture). `architecture_indices(genotype)` makes one.

    Returns:
        images: float32 [B, 8 * bottom_width, 8 * bottom_width, 3] in [-1, 1].
    """

    def __init__(
        self,
        gf: int = 256,
        latent_dim: int = 128,
        bottom_width: int = 4,
        alpha_stddev: float = 1e-3,
        fuse_convs: bool = True,
        synchronized_bn: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("name", "search_generator")
        super().__init__(gf=gf, latent_dim=latent_dim, bottom_width=bottom_width, **kwargs)
        self.fuse_convs = bool(fuse_convs)
        self.synchronized_bn = bool(synchronized_bn)
        self.alpha_stddev = float(alpha_stddev)
        skip_scales = [(), SKIP_2_SCALES, SKIP_3_SCALES]
        self._set_cells(
            [
                SearchCell(
                    self.gf,
                    skip_scales=scales,
                    affine=False,
                    alpha_stddev=self.alpha_stddev,
                    fuse_convs=self.fuse_convs,
                    synchronized_bn=self.synchronized_bn,
                    name=f"cell{i + 1}",
                )
                for i, scales in enumerate(skip_scales)
            ],
            GeneratorHead(synchronized_bn=self.synchronized_bn, name="head"),
        )

    # -- architecture ------------------------------------------------------------
    def mixed_ops(self) -> list[MixedOp]:
        """The 18 `MixedOp`s, in `genotypes.EDGE_NAMES` order."""
        return self.edge_layers()

    @property
    def arch_variables(self) -> list:
        """The 18 alpha variables, in `genotypes.EDGE_NAMES` order (module docstring)."""
        return [op.alpha for op in self.mixed_ops()]

    @property
    def weight_variables(self) -> list:
        """Every trainable variable that is not an alpha (in model order)."""
        return weight_variables_excluding(self.trainable_variables, self.arch_variables)

    def edge_alphas(self) -> list[tuple[str, str, list[str], keras.Variable]]:
        """(edge name, kind "normal"|"up", op names, alpha variable) per edge, in order."""
        return [
            (name, kind, list(op.op_names), op.alpha)
            for (name, kind), op in zip(EDGES, self.mixed_ops())
        ]

    def genotype(self) -> Genotype:
        """Derivation: the argmax op of every edge's alpha."""
        return derive_genotype([np.asarray(v) for v in self.arch_variables])

    def architecture_indices(self, genotype: Genotype) -> np.ndarray:
        """int32 [18]: the index of `genotype`'s op on every edge (the `architecture` call arg)."""
        return np.array(
            [op.op_names.index(chosen) for op, chosen in zip(self.mixed_ops(), genotype.ops())],
            np.int32,
        )

    def set_alphas_from_genotype(self, genotype: Genotype, chosen_logit: float = 1000.0) -> None:
        """Sets every alpha one-hot on `genotype`'s op: 0 elsewhere, `chosen_logit` on it.

        With the default logit float32 softmax is exactly one-hot, so the
        supernet then computes the genotype's network (tests, inspection).
        """
        for (name, _), op, chosen in zip(EDGES, self.mixed_ops(), genotype.ops()):
            values = np.zeros(len(op.op_names), dtype="float32")
            values[op.op_names.index(chosen)] = chosen_logit
            op.alpha.assign(values)

    def get_config(self):
        return {
            **super().get_config(),
            "alpha_stddev": self.alpha_stddev,
            "fuse_convs": self.fuse_convs,
            "synchronized_bn": self.synchronized_bn,
        }
