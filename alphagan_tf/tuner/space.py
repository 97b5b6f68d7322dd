"""The AlphaGAN generator space as a KerasTuner `HyperModel`.

One `hp.Choice` per edge, named by the edge (`genotypes.EDGE_NAMES`, e.g.
"cell1.up[0]", "cell2.normal[1]", "skip_3[0]") and in that order: the 9 normal
edges choose among `NORMAL_OPS` (6), the 6 up edges and 3 skip edges among
`UP_OPS` (3). The hyperparameter values of a trial are a dict edge name -> op
name, which converts both ways to our `Genotype`:

    values = genotype_to_values(PRESETS["alphaGAN_s"])   # {"cell1.up[0]": "bilinear", ...}
    values_to_genotype(values) == PRESETS["alphaGAN_s"]  # True

`GeneratorHyperModel.build(hp)` builds the fixed generator of the sampled
genotype (`Generator.from_genotype`, no alpha). `GeneratorHyperModel.fit(hp, model,
workdir=...)` retrains that genotype with the project's GAN loop and returns the
objective (see `objective.py`): a GAN needs a discriminator, an EMA copy and two
optimizers, so the retrain builds its own G / EMA G / D from the same genotype and
widths; the built `model` is the trial's architecture check and parameter count.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import keras_tuner
import tensorflow as tf

from alphagan_tf.gan.space import genotypes
from alphagan_tf.gan.space.generator import Generator
from alphagan_tf.gan.space.genotypes import EDGES, EDGE_NAMES, Genotype, GenotypeError

# KerasTuner's own hyperparameters (Hyperband's budget bookkeeping), not edges.
_TUNER_PREFIX = "tuner/"


def genotype_to_values(genotype: Genotype) -> dict[str, str]:
    """Genotype -> KerasTuner values: {edge name: op name} for all 18 edges."""
    if not isinstance(genotype, Genotype):
        raise TypeError(f"Expected a Genotype. Received: genotype={genotype!r}")
    return dict(zip(EDGE_NAMES, genotype.ops()))


def values_to_genotype(values: Mapping[str, Any] | keras_tuner.HyperParameters) -> Genotype:
    """KerasTuner values (a dict or a `HyperParameters`) -> the validated Genotype.

    Keys of KerasTuner's own ("tuner/epochs", ... of Hyperband) are ignored; any
    other key that is not an edge name is an error, as is a missing edge.

    Raises:
        GenotypeError: missing or unknown edges, or an op that the edge cannot take
            (the message names the edge).
    """
    if isinstance(values, keras_tuner.HyperParameters):
        values = values.values
    if not isinstance(values, Mapping):
        raise GenotypeError(
            f"values: expected a mapping edge name -> op name. Received: {values!r}"
        )
    edges = {k: v for k, v in values.items() if not str(k).startswith(_TUNER_PREFIX)}
    missing = [name for name in EDGE_NAMES if name not in edges]
    unknown = sorted(set(edges) - set(EDGE_NAMES))
    if missing or unknown:
        raise GenotypeError(
            f"values: expected one op per edge {list(EDGE_NAMES)}. "
            f"Missing: {missing}; unknown: {unknown}"
        )
    for name, kind in EDGES:
        allowed = genotypes.candidates_for(kind)
        if edges[name] not in allowed:
            raise GenotypeError(
                f"values[{name!r}]: unknown op {edges[name]!r} for a {kind} edge; "
                f"expected one of {allowed}"
            )
    return genotypes.genotype_from_ops([edges[name] for name in EDGE_NAMES])


def declare_edges(hp: keras_tuner.HyperParameters) -> dict[str, str]:
    """Registers (or reads) one `hp.Choice` per edge; returns {edge name: chosen op}."""
    return {
        name: hp.Choice(name, list(genotypes.candidates_for(kind)))
        for name, kind in EDGES
    }


class GeneratorHyperModel(keras_tuner.HyperModel):
    """The generator space: `build(hp)` -> the fixed generator of the sampled genotype.

    Args:
        gf: generator channels.
        latent_dim: latent vector size.
        bottom_width: spatial size after the first Dense (images are 8x larger).
        objective: `fn(genotype, workdir, g_iterations=None) -> dict` of metrics, the
            retrain-and-evaluate of `objective.RetrainObjective`; needed by `fit`
            only (building and converting work without it).
        name: the HyperModel's name.
    """

    def __init__(
        self,
        gf: int = 256,
        latent_dim: int = 128,
        bottom_width: int = 4,
        objective: Callable[..., dict] | None = None,
        name: str = "alphagan_generator",
    ):
        super().__init__(name=name, tunable=True)
        self.gf = gf
        self.latent_dim = latent_dim
        self.bottom_width = bottom_width
        self.objective = objective

    def genotype(self, hp: keras_tuner.HyperParameters) -> Genotype:
        """The genotype of `hp` (declaring the edge choices if `hp` lacks them)."""
        declare_edges(hp)
        return values_to_genotype(hp)

    def build(self, hp: keras_tuner.HyperParameters):
        """The built fixed `Generator` of the sampled genotype (latents [B, latent_dim]
        -> images [B, 8*bottom_width, 8*bottom_width, 3] in [-1, 1])."""
        generator = Generator.from_genotype(
            self.genotype(hp), gf=self.gf, latent_dim=self.latent_dim,
            bottom_width=self.bottom_width,
        )
        generator(tf.zeros([1, self.latent_dim]), training=False)
        return generator

    def fit(self, hp: keras_tuner.HyperParameters, model, *args, workdir: str,
            g_iterations: int | None = None, **kwargs) -> dict:
        """Retrains the genotype of `hp` in `workdir`; returns {"fid", "inception_score", ...}.

        Args:
            hp: the trial's hyperparameters.
            model: the generator `build(hp)` returned (its parameter count is reported).
            workdir: the trial's retraining directory (re-running resumes in it).
            g_iterations: the budget in generator iterations (None: the objective's).
        """
        if self.objective is None:
            raise ValueError(
                "GeneratorHyperModel.fit needs an objective (objective.RetrainObjective). "
                "Received: objective=None"
            )
        metrics = dict(self.objective(self.genotype(hp), workdir, g_iterations=g_iterations))
        metrics["generator_params"] = float(model.count_params())
        return metrics
