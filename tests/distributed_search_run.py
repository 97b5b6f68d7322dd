"""The search on one device and under MirroredStrategy on two logical CPUs, in one process.

Run by tests/test_distribution.py in a subprocess (the CPU must be split into
logical devices before TensorFlow initialises, which the test process has
already done). Prints one JSON object on the last line of stdout:

    arch_optimizer   alphas after coupled-L2 Adam steps, one device vs two replicas
    uneven_batch     the error for a batch that two replicas cannot share
    one, two         genotype_history.json of a 2-epoch tiny search: one device;
                     two replicas (1 epoch, then resumed from its checkpoint for the 2nd)
    *_variables      every generator / discriminator variable after the search, by path
    alphas_initial   the alphas both searches started from
"""

import json
import sys

from alphagan_tf.utils import distribution

distribution.split_cpu(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from alphagan_tf.gan.search.config import SearchRunConfig  # noqa: E402
from alphagan_tf.gan.search.alphagan import build_searcher, run_search
from alphagan_tf.gan.space.generator_config import GeneratorConfig  # noqa: E402
from alphagan_tf.gan.search.config import SearchConfig  # noqa: E402
from alphagan_tf.nas.arch_optimizer import ArchitectureOptimizer, ArchOptimizerConfig  # noqa: E402

TINY = SearchConfig(inner_steps=5, worst_steps=2, outer_steps=3, n_critic=5, batch_size=4)
TINY_MODEL = GeneratorConfig(gf=4, df=4, latent_dim=8, bottom_width=1)
MIRRORED = dict(strategy="mirrored", devices=("/cpu:0", "/cpu:1"), cpu_devices=2)


def run_config(**overrides):
    base = dict(search=TINY, model=TINY_MODEL, epochs=2, seed=3,
                sample_every=1, keep_checkpoints=2, deterministic=True)
    base.update(overrides)
    return SearchRunConfig(**base)


def arch_optimizer_steps(strategy):
    """Three coupled-L2 Adam steps on alpha, the loss a mean over a batch split by replica."""
    batches = np.random.default_rng(0).normal(size=(3, 4, 3)).astype("float32")
    with strategy.scope():
        alpha = keras.Variable([0.5, -1.0, 2.0])
        optimizer = ArchitectureOptimizer(ArchOptimizerConfig(learning_rate=0.1, weight_decay=0.5))
        optimizer.build([alpha])
    replicas = strategy.num_replicas_in_sync

    @tf.function
    def step(x):
        def on_replica(x):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            local = tf.gather(tf.reshape(x, [replicas, -1, 3]), replica)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.reduce_sum(local * alpha**2, axis=1)) / replicas
            optimizer.apply(tape.gradient(loss, [alpha]), [alpha])

        strategy.run(on_replica, args=(x,))

    for x in batches:
        step(tf.constant(x))
    return alpha.numpy().tolist()


def variables(model):
    return {v.path: np.asarray(v.numpy()).ravel().tolist() for v in model.variables}


def main(workdir):
    # The players are built here, before run_search would seed them: seed first, so that
    # every run of the test starts from the same weights and compares the same numbers.
    keras.utils.set_random_seed(3)
    tf.config.experimental.enable_op_determinism()
    result = {}
    try:
        build_searcher(run_config(search=SearchConfig(batch_size=3), **MIRRORED))
        result["uneven_batch"] = None
    except distribution.StrategyError as error:
        result["uneven_batch"] = str(error)

    one = build_searcher(run_config())
    two = build_searcher(run_config(**MIRRORED))
    result["replicas"] = [one.replicas, two.replicas]
    result["synchronized_bn"] = [one.generator.synchronized_bn, two.generator.synchronized_bn]
    # Same starting point (a mirrored variable is initialised on its own).
    for source, target in ((one.generator, two.generator), (one.discriminator, two.discriminator)):
        for s, t in zip(source.variables, target.variables):
            t.assign(s)
    result["alphas_initial"] = [a.numpy().tolist() for a in one.generator.arch_variables]

    run_search(run_config(), f"{workdir}/one", verbose=0, searcher=one)
    run_search(run_config(epochs=1, **MIRRORED), f"{workdir}/two", verbose=0, searcher=two)
    run_search(run_config(**MIRRORED), f"{workdir}/two", verbose=0, searcher=two)  # resumes
    for name, searcher in (("one", one), ("two", two)):
        with open(f"{workdir}/{name}/genotype_history.json") as f:
            result[name] = json.load(f)
        result[f"{name}_variables"] = {
            "generator": variables(searcher.generator),
            "discriminator": variables(searcher.discriminator),
        }
    # Two MirroredStrategy objects on the same devices would share collective keys: reuse one.
    result["arch_optimizer"] = {
        "one": arch_optimizer_steps(distribution.make_strategy("default")),
        "two": arch_optimizer_steps(two.strategy),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
