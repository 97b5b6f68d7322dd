"""The alternating (first-order) weight / architecture step of bi-level search.

DARTS-style search optimises network weights w on training data and
architecture weights alpha on held-out data. The first-order approximation
alternates two plain gradient steps:

    w     <- w     - opt_w(grad_w     L_train(w, alpha))   on a training batch
    alpha <- alpha - opt_a(grad_alpha L_held_out(w, alpha)) on a held-out batch

`AlternatingSteps` compiles each step once (`tf.function`, one tape each,
scalars out). It is generic: it takes loss callables and the two variable
lists, so any searchable model (TextNAS here) uses it as is. Call `build()`
before the first step so that every optimizer slot exists before tracing.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import tensorflow as tf

#: loss_fn(batch) -> (scalar loss, {name: scalar}) ; runs inside the tape.
LossFn = Callable[[Any], tuple[Any, Mapping[str, Any]]]


class AlternatingSteps:
    """Two compiled steps: `weight_step(batch)` and `arch_step(batch)`.

    Args:
        weight_loss_fn: training loss for the network weights.
        arch_loss_fn: held-out loss for the architecture weights.
        weight_variables: the network weights (no architecture weights).
        arch_variables: the architecture weights.
        weight_optimizer: has `build(variables)`, `scale_loss(loss)` and
            `apply(grads, variables)` (a Keras optimizer; apply unscales).
        arch_optimizer: same interface (e.g. `nas.ArchitectureOptimizer`).
        input_signature: optional `tf.function` input signature of a batch
            (e.g. one `TensorSpec` with a None time axis to trace once).

    Each step returns {"loss": scalar, **metrics} as tensors; the caller turns
    them into numbers outside the compiled function.
    """

    def __init__(
        self,
        weight_loss_fn: LossFn,
        arch_loss_fn: LossFn,
        weight_variables: Sequence,
        arch_variables: Sequence,
        weight_optimizer,
        arch_optimizer,
        input_signature: Sequence | None = None,
    ):
        weight_ids = {id(v) for v in weight_variables}
        overlap = [v.name for v in arch_variables if id(v) in weight_ids]
        if overlap:
            raise ValueError(
                "weight_variables and arch_variables must be disjoint. "
                f"Received shared variables: {overlap}"
            )
        if not weight_variables or not arch_variables:
            raise ValueError(
                "both variable lists must be non-empty. Received: "
                f"{len(weight_variables)} weight, {len(arch_variables)} arch variables"
            )
        self.weight_loss_fn = weight_loss_fn
        self.arch_loss_fn = arch_loss_fn
        self.weight_variables = list(weight_variables)
        self.arch_variables = list(arch_variables)
        self.weight_optimizer = weight_optimizer
        self.arch_optimizer = arch_optimizer
        self._built = False
        kwargs = {} if input_signature is None else {"input_signature": list(input_signature)}
        self.weight_step = tf.function(self._weight_step, **kwargs)
        self.arch_step = tf.function(self._arch_step, **kwargs)

    def build(self) -> None:
        """Creates every optimizer slot (call before the first step)."""
        self.weight_optimizer.build(self.weight_variables)
        self.arch_optimizer.build(self.arch_variables)
        self._built = True

    @staticmethod
    def _step(loss_fn, variables, optimizer, *batch):
        with tf.GradientTape() as tape:
            loss, metrics = loss_fn(*batch)
            scaled = optimizer.scale_loss(loss)  # float16: the loss scale; else the loss
        grads = tape.gradient(scaled, variables)
        missing = [v.name for v, g in zip(variables, grads) if g is None]
        if missing:
            raise ValueError(f"no gradient reaches these variables: {missing[:5]}")
        optimizer.apply(grads, variables)
        return {"loss": loss, **metrics}

    def _weight_step(self, *batch):
        self._check_built()
        return self._step(self.weight_loss_fn, self.weight_variables, self.weight_optimizer, *batch)

    def _arch_step(self, *batch):
        self._check_built()
        return self._step(self.arch_loss_fn, self.arch_variables, self.arch_optimizer, *batch)

    def _check_built(self):
        if not self._built:
            raise RuntimeError("call AlternatingSteps.build() before the first step.")
