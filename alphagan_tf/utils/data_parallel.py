"""Data parallelism of a compiled step: the global batch split over a strategy's replicas.

The search's and the retraining's steps run the same way:

    parallel = DataParallel(strategy)
    parallel.check_batch(64, "batch_size")        # a batch the replicas cannot share: an error

    def d_step(real):                             # cross-replica context (a tf.function)
        z = latent_rng.normal([64, latent_dim])   # the global latents, drawn as on one device
        return parallel.run(d_replica, real, z)   # each replica its slice; losses summed

    def d_replica(real, z):                       # replica context: the local slices
        loss = parallel.share(local_mean_loss)    # local mean / replicas
        ...

Each replica's loss is its slice's mean divided by the number of replicas, so
the summed (all-reduced) gradients are those of the global-batch mean and the
summed losses are the global-batch losses. With the generators' batch norms
synchronized, N replicas compute what one device computes on the global batch.
With one replica (the default strategy) `run` is `replica_fn(*global_batches)`.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from alphagan_tf.utils.distribution import StrategyError


class DataParallel:
    """Runs per-replica step functions on every replica of `strategy` (default: the current one).

    Attributes:
        strategy: the `tf.distribute` strategy.
        replicas: its number of replicas in sync.
    """

    def __init__(self, strategy: tf.distribute.Strategy | None = None):
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync

    def check_batch(self, batch_size: int, flag: str) -> None:
        """Raises StrategyError unless `batch_size` (the flag `flag`) splits evenly over the replicas."""
        if batch_size % self.replicas:
            raise StrategyError(
                f"The batch of {batch_size} cannot be split evenly over {self.replicas} "
                f"replicas: make {flag} a multiple of the replica count."
            )

    def check_built_in_scope(self, what: str, *models: keras.Model) -> None:
        """Raises ValueError unless every model's variables were created under the strategy's scope."""
        for model in models:
            if not self.strategy.extended.variable_created_in_scope(model.variables[0].value):
                raise ValueError(
                    f"{model.name} was built outside the scope of the {what}'s "
                    f"{type(self.strategy).__name__}: build it under strategy.scope()."
                )

    def run(self, replica_fn: Callable, *global_batches: tf.Tensor):
        """replica_fn(*local slices) on every replica; its outputs summed over replicas.

        Call in cross-replica context. Each replica receives only its slice of every
        global batch (`distribute`). `replica_fn` returns per-replica shares of global
        means (`share`), so the sums are the global-batch values.
        """
        if self.replicas > 1:
            global_batches = tuple(self.distribute(b) for b in global_batches)
        outputs = self.strategy.run(replica_fn, args=global_batches)
        return tf.nest.map_structure(
            lambda v: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None), outputs
        )

    def distribute(self, global_batch: tf.Tensor):
        """The global batch as per-replica values: replica i holds rows [i*B/R, (i+1)*B/R).

        The batch is cut on this process's CPU and each replica's device receives only
        its slice. (tf.distribute's own dataset distribution does the same, but its
        iterators cannot be checkpointed: `tf.train.Checkpoint` refuses a
        DistributedIterator, and an exact resume needs the data iterator in the checkpoint.)
        """
        with tf.device("/device:CPU:0"):
            slices = tf.split(global_batch, self.replicas, axis=0)
        return self.strategy.experimental_distribute_values_from_function(
            lambda context: tf.identity(slices[context.replica_id_in_sync_group]))

    def clipped_gradients(self, grads: list, clipnorm: float) -> list:
        """In replica context: this replica's gradients, for an optimizer built without clipping,
        such that it applies the global batch's gradient clipped by its global norm.

        Keras' optimizer clips the gradients it is given (a replica's share) before
        summing them over the replicas; one device clips the sum. So the shares are
        all-reduced here, the sum clipped (`clipnorm` > 0), and each replica hands the
        optimizer 1/replicas of it (the optimizer sums them back). With one replica the
        gradients are returned as they are: the optimizer clips them itself.
        """
        if self.replicas == 1:
            return grads
        present = [i for i, g in enumerate(grads) if g is not None]
        # Dense: the norm of an embedding's IndexedSlices would count a repeated row twice.
        total = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, [tf.convert_to_tensor(grads[i]) for i in present])
        if clipnorm:
            total, _ = tf.clip_by_global_norm(total, clipnorm)
        out = list(grads)
        for i, g in zip(present, total):
            out[i] = g / self.replicas
        return out

    def share(self, value: tf.Tensor) -> tf.Tensor:
        """This replica's share of a global-batch mean (its local mean / replicas)."""
        return value / self.replicas if self.replicas > 1 else value
