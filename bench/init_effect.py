r"""What the initialisation difference with the authors' retraining does at the start.

Our G and D start from Keras' initialisers (glorot_uniform kernels, zero biases, batch
norms 1 and 0); `train_geno_gan.py --init_type xavier_uniform` gives the same
xavier-uniform conv kernels but PyTorch's defaults elsewhere (U(+-1/sqrt(fan_in)) conv
biases, the stem's Linear, the deconvs, D's last Linear) and N(1, 0.02) batch-norm
weights (tests/test_parity_train.py, `initialisation_rules`, checks each rule). This
runs our networks from each initialisation (the authors' drawn by their own code and
moved over by the weight bridge) on the same latents and real CIFAR-10 images, and
prints what a first training step sees: G's images in training mode (batch
statistics) and in inference mode (the initial moving statistics), and D's logits
and hinge losses (one power iteration per call, as in a training step).

    python bench/init_effect.py                          # alphaGAN(s), gf 256, df 128, 3 seeds
    python bench/init_effect.py --genotype=alphaGAN_l --gf=64 --df=64

Needs torch and ../shared/ref/AlphaGAN (the test extra) and ../shared/data/cifar10_sample.npz.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # authors_reference: the authors' code on CPU

import numpy as np  # noqa: E402

SAMPLE = os.path.join(HERE, "..", "..", "shared", "data", "cifar10_sample.npz")


def networks(args, init: str, seed: int):
    """Our G and D at `args`' sizes, initialised by Keras ("ours") or by the authors' code."""
    import keras

    import authors_reference as ar
    from alphagan_tf.gan.space.discriminator import Discriminator
    from alphagan_tf.gan.space.generator import Generator
    from alphagan_tf.gan.space.genotypes import load_genotype
    from alphagan_tf.interop import bridge

    genotype = load_genotype(args.genotype)
    keras.utils.set_random_seed(seed)
    g = Generator(genotype, gf=args.gf, latent_dim=args.latent_dim, bottom_width=4)
    d = Discriminator(df=args.df)
    g(np.zeros([1, args.latent_dim], np.float32), training=False)
    d(np.zeros([1, 32, 32, 3], np.float32), training=False)
    if init == "authors'":
        ref = ar.load()
        ref.torch.manual_seed(seed)
        reference_args = ar.args(gf_dim=args.gf, df_dim=args.df, latent_dim=args.latent_dim)
        with contextlib.redirect_stdout(io.StringIO()):
            theirs_g = ref.alphagan_network.Network_gen_Auto(reference_args, ar.reference_genotype(genotype))
        theirs_d = ref.alphagan_network.Discriminator(reference_args)
        ar.retraining_init(theirs_g)
        ar.retraining_init(theirs_d)
        bridge.load_state_dict(g, ar.to_numpy_state(theirs_g))
        bridge.load_state_dict(d, ar.to_numpy_state(theirs_d))
    return g, d


def measure(g, d, z: np.ndarray, real: np.ndarray) -> dict[str, float]:
    from alphagan_tf.gan.train import losses

    fake = g(z, training=True)
    inference = np.asarray(g(z, training=False))
    real_logits = np.asarray(d(real, training=True))
    fake_logits = np.asarray(d(fake, training=True))
    fake = np.asarray(fake)
    return {
        "G image std (training)": float(fake.std()),
        "G |x| > 0.99 (training)": float((np.abs(fake) > 0.99).mean()),
        "G image std (inference)": float(inference.std()),
        "D logit real mean": float(real_logits.mean()),
        "D logit fake mean": float(fake_logits.mean()),
        "D logit std": float(np.concatenate([real_logits, fake_logits]).std()),
        "D hinge loss": float(losses.hinge_discriminator_loss(real_logits, fake_logits)),
        "G hinge loss": float(losses.hinge_generator_loss(fake_logits)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genotype", default="alphaGAN_s")
    parser.add_argument("--gf", type=int, default=256)
    parser.add_argument("--df", type=int, default=128)
    parser.add_argument("--latent_dim", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    images = np.load(SAMPLE)["x_train"]
    rng = np.random.RandomState(0)
    real = (images[rng.choice(len(images), args.batch_size, replace=False)] / 127.5 - 1).astype(np.float32)
    z = rng.normal(size=(args.batch_size, args.latent_dim)).astype(np.float32)
    results = {}
    for init in ("ours", "authors'"):
        runs = [measure(*networks(args, init, seed), z, real) for seed in range(args.seeds)]
        results[init] = {k: (np.mean([r[k] for r in runs]), np.std([r[k] for r in runs])) for k in runs[0]}
    print(f"{args.genotype}, gf {args.gf}, df {args.df}, batch {args.batch_size}, "
          f"mean (std) over {args.seeds} seeds of the initialisation")
    print(f"| {'at initialisation':<26} | {'ours (Keras)':>18} | {'authors':>18} |")
    print(f"|{'-' * 28}|{'-' * 19}:|{'-' * 19}:|")
    for key in results["ours"]:
        cells = [f"{m:.4g} ({s:.2g})" for m, s in (results["ours"][key], results["authors'"][key])]
        print(f"| {key:<26} | {cells[0]:>18} | {cells[1]:>18} |")


if __name__ == "__main__":
    main()
