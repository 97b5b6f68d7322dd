"""CPU cost of one TextNAS search step: relaxed (darts) against sampled (enas, random_ws).

At the sizes of configs/sst2.cfg / sst5.cfg (24 layers, width 32, batch 256,
128-d embeddings), on real SST phrase batches (length-bucketed, as the search
draws them), one thread. Prints, per kind of step, the median CPU seconds over
--steps steps after a warm-up, and the one-off cost of tracing and the first
call:

- darts weight step: every candidate of every layer, softmax-weighted, + backward;
- darts arch step: the same on a held-out batch, gradients to the alphas;
- sampled child step: one candidate per layer (`tf.switch_case`) + backward,
  a different random architecture each step;
- controller step: sample, held-out accuracy of the sampled child (inference),
  REINFORCE update of the controller.

    python bench/textnas_sampled_step.py                 # SST-2 sizes
    python bench/textnas_sampled_step.py --task=sst5 --steps=20

Never part of the test run; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sst_dir", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                          "shared", "data", "sst"))
    parser.add_argument("--task", default="sst2", choices=["sst2", "sst5"])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--embedding_dim", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from alphagan_tf.nas.arch_optimizer import ArchitectureOptimizer
    from alphagan_tf.nas.bilevel import AlternatingSteps
    from alphagan_tf.textnas import data as sst
    from alphagan_tf.textnas.search.child import ChildSteps, SampledPathAdam
    from alphagan_tf.textnas.search.controller import ControllerConfig, TextNASController
    from alphagan_tf.textnas.space.model import NetworkConfig
    from alphagan_tf.textnas.search.reinforce import ReinforceTrainer
    from alphagan_tf.textnas.search.random_ws import UniformSampler
    from alphagan_tf.nas.sampling import stream_seed
    from alphagan_tf.textnas.space.supernet import TextNASSupernet
    from alphagan_tf.textnas.train.classification import BATCH_SIGNATURE, classification_loss_fn

    keras.utils.set_random_seed(0)
    split = sst.load_search_split(args.sst_dir, args.task, 0.1, seed=0)
    weight_batches = sst.BucketBatcher(split.weight_phrases, args.batch_size, 0)
    arch_batches = sst.BucketBatcher(split.arch_phrases, args.batch_size, 1)
    network = NetworkConfig(vocab_size=len(split.vocab), num_classes=sst.TASKS[args.task],
                            units=args.units, embedding_dim=args.embedding_dim)
    print(f"{args.task}: {args.layers} layers, width {args.units}, batch {args.batch_size}, "
          f"{args.threads} thread(s); mean tokens per phrase "
          f"{split.weight_phrases.lengths.mean():.1f}")

    def timed(name, step, count):
        started = time.process_time()
        step(0)
        first = time.process_time() - started
        costs = []
        for k in range(1, count + 1):
            started = time.process_time()
            step(k)
            costs.append(time.process_time() - started)
        median = statistics.median(costs)
        print(f"{name:<22s} {median:7.3f} CPU-s/step (median of {count}), "
              f"trace + first call {first:6.1f} CPU-s")
        return median

    # darts: the relaxed supernet.
    relaxed = TextNASSupernet.create(network, args.layers)
    loss_fn = classification_loss_fn(relaxed)
    steps = AlternatingSteps(loss_fn, loss_fn, relaxed.weight_variables, relaxed.arch_variables,
                             keras.optimizers.Adam(2e-3), ArchitectureOptimizer(),
                             input_signature=BATCH_SIGNATURE)
    steps.build()
    weight = timed("darts weight step", lambda k: steps.weight_step(*weight_batches.batch_at(k)),
                   args.steps)
    arch = timed("darts arch step", lambda k: steps.arch_step(*arch_batches.batch_at(k)), args.steps)
    del relaxed, steps

    # enas / random_ws: the same supernet on one sampled architecture per step.
    shared = TextNASSupernet.create(network, args.layers)
    child = ChildSteps(shared, SampledPathAdam(2e-3))
    uniform = UniformSampler(args.layers)
    sampled = timed("sampled child step", lambda k: child.train_step(
        *weight_batches.batch_at(k), *uniform(stream_seed(0, 0, k)).as_tuple()), args.steps)
    trainer = ReinforceTrainer(TextNASController.create(args.layers), ControllerConfig())

    def controller_step(k):
        ids, labels = arch_batches.batch_at(k)
        trainer.step(stream_seed(0, 1, k), lambda a: float(
            (child.predict(ids, *a).numpy().argmax(-1) == labels).mean()))

    control = timed("controller step", controller_step, args.steps)
    print(f"sampled child step / darts weight step: {sampled / weight:.2f} "
          f"({weight / sampled:.1f}x cheaper); darts step (weight + arch) = "
          f"{weight + arch:.3f} CPU-s; controller step / sampled child step: {control / sampled:.2f}")


if __name__ == "__main__":
    main()
