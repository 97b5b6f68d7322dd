r"""Measured differences between this implementation and the authors' PyTorch code.

    python bench/parity.py            # every check, float32 and float64 (a few minutes)

Runs the checks of tests/test_parity_networks.py and tests/test_parity_search.py
(the authors' modules from ../shared/ref/AlphaGAN on CPU, same weights in, same
latents) and prints the largest difference of each, in float32 and in float64,
as the README's parity table reports them. Needs torch (the test extra).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import authors_reference as ar  # noqa: E402
import test_parity_networks as networks  # noqa: E402
import test_parity_search as search  # noqa: E402
from alphagan_tf.gan.train import losses  # noqa: E402
from alphagan_tf.gan.space.discriminator import Discriminator  # noqa: E402
from alphagan_tf.gan.space.generator import Generator  # noqa: E402
from alphagan_tf.gan.space.genotypes import PRESETS  # noqa: E402
from alphagan_tf.interop import bridge  # noqa: E402

BATCH, LATENT, WIDTH = 4, 8, 16


def fixed_generators(ref, dtype):
    torch = ref.torch
    worst = {"inference": 0.0, "training": 0.0}
    for preset in ("alphaGAN_l", "alphaGAN_s"):
        for bw in (4, 6):
            with ar.precision(dtype), ar.keras_dtype_policy(dtype):
                torch.manual_seed(0)
                args = ar.args(gf_dim=WIDTH, latent_dim=LATENT, bottom_width=bw)
                theirs = networks._quiet(ref.alphagan_network.Network_gen_Auto, args,
                                         ar.reference_genotype(PRESETS[preset]))
                networks._randomize_batch_norms(theirs, torch, torch.Generator().manual_seed(bw))
                ours = Generator(PRESETS[preset], gf=WIDTH, latent_dim=LATENT, bottom_width=bw)
                bridge.load_state_dict(ours, ar.to_numpy_state(theirs))
                z = np.random.RandomState(1).normal(size=(BATCH, LATENT)).astype(dtype)
                for mode, training in (("inference", False), ("training", True)):
                    theirs.train(training)
                    with torch.no_grad():
                        expected = networks._nhwc(theirs(torch.from_numpy(z)).numpy())
                    got = ours(z, training=training).numpy()
                    worst[mode] = max(worst[mode], float(np.abs(got - expected).max()))
    return worst


def discriminator(ref, dtype):
    torch = ref.torch
    with ar.precision(dtype), ar.keras_dtype_policy(dtype):
        torch.manual_seed(0)
        theirs = ref.alphagan_network.Discriminator(ar.args(df_dim=WIDTH))
        ours = Discriminator(df=WIDTH)
        bridge.load_state_dict(ours, ar.to_numpy_state(theirs))
        images = np.random.RandomState(2).uniform(-1, 1, (BATCH, 32, 32, 3)).astype(dtype)
        worst = {}
        for mode, training in (("training", True), ("inference", False)):
            theirs.train(training)
            with torch.no_grad():
                expected = theirs(torch.from_numpy(networks._nchw(images))).numpy()
            got = ours(images, training=training).numpy()
            worst[mode] = float(np.abs(got - expected).max() / np.abs(expected).max())
    return worst


def supernet_gradients(ref, dtype, fuse_convs):
    torch = ref.torch
    with ar.precision(dtype):
        theirs_g, theirs_d, ours_g, ours_d = networks._supernet_pair(ref, fuse_convs, dtype=dtype)
        rng = np.random.RandomState(4)
        z = rng.normal(size=(BATCH, LATENT)).astype(dtype)
        theirs_g.train()
        theirs_d.train()
        with torch.no_grad():
            expected = networks._nhwc(networks._quiet(theirs_g, torch.from_numpy(z)).numpy())
        output = float(np.abs(ours_g(z, training=True).numpy() - expected).max())
        loss_t = -torch.mean(theirs_d(networks._quiet(theirs_g, torch.from_numpy(z))))
        loss_t.backward()
    entries = [e for e in bridge.search_generator_entries(ours_g) if e.variable.trainable]
    rows = bridge.search_generator_alphas(ours_g)
    alpha_vars = [v for r in rows.values() for v in r]
    with tf.GradientTape() as tape:
        loss = losses.hinge_generator_loss(ours_d(ours_g(z, training=True), training=True))
    grads = tape.gradient(loss, [e.variable for e in entries] + alpha_vars)
    theirs = {n: p.grad.numpy() for n, p in theirs_g.named_parameters()}
    weights = max(
        float(np.abs(e.layout.to_torch(g.numpy()) - theirs[e.torch_name]).max()
              / np.abs(theirs[e.torch_name]).max())
        for e, g in zip(entries, grads) if not networks._shift_only(e.torch_name)
    )
    it = iter(grads[len(entries):])
    alphas = max(
        float(np.abs(np.stack([next(it).numpy() for _ in r]) - getattr(theirs_g, n).grad.numpy()).max()
              / np.abs(getattr(theirs_g, n).grad.numpy()).max())
        for n, r in rows.items()
    )
    return {"output": output, "weight gradients (rel)": weights, "alpha gradients (rel)": alphas}


def search_iteration(dtype):
    state = search.run_iteration(dtype)
    names = state["alpha_names"]
    ours = search._state(state["searcher"].generator)
    theirs = search._torch_state(state["theirs"]["g"], names)
    alphas = max(float(np.abs(ours[n] - theirs[n]).max()) for n in names)
    dg = abs(state["ours"]["duality_gap"] - state["dg"][0]) / abs(state["dg"][0])
    players = max(
        search._max_difference(search._state(o, include_alphas=False), search._torch_state(m))
        for o, m in ((state["searcher"].generator, state["theirs"]["g"]),
                     (state["searcher"].discriminator, state["theirs"]["d"]),
                     (state["searcher"].worst_generator, state["theirs"]["g_worst"]),
                     (state["searcher"].worst_discriminator, state["theirs"]["d_worst"]))
    )
    return {"alphas": alphas, "duality gap (rel)": dg, "player states": players}


def main():
    ref = ar.load()
    rows = []
    for dtype in ("float32", "float64"):
        with contextlib.redirect_stdout(io.StringIO()):
            g = fixed_generators(ref, dtype)
            d = discriminator(ref, dtype)
            s_fused = supernet_gradients(ref, dtype, True)
            s_plain = supernet_gradients(ref, dtype, False)
            it = search_iteration(dtype)
        rows += [
            (dtype, "fixed G (l, s; bw 4, 6), inference, max |image diff|", g["inference"]),
            (dtype, "fixed G (l, s; bw 4, 6), training, max |image diff|", g["training"]),
            (dtype, "retraining D, training, max |logit diff| / max |logit|", d["training"]),
            (dtype, "retraining D, inference, max |logit diff| / max |logit|", d["inference"]),
            (dtype, "supernet G output (training), max |diff|", s_fused["output"]),
            (dtype, "supernet G hinge-loss weight gradients, fused convs (rel)",
             s_fused["weight gradients (rel)"]),
            (dtype, "supernet G hinge-loss weight gradients, plain convs (rel)",
             s_plain["weight gradients (rel)"]),
            (dtype, "alpha gradients, fused convs (rel)", s_fused["alpha gradients (rel)"]),
            (dtype, "one search iteration: alphas after, max |diff|", it["alphas"]),
            (dtype, "one search iteration: duality gap (rel)", it["duality gap (rel)"]),
            (dtype, "one search iteration: G, D, G_worst, D_worst states, max |diff|",
             it["player states"]),
        ]
    print(f"{'dtype':8s} {'check':70s} {'max difference':>15s}")
    for dtype, check, value in rows:
        print(f"{dtype:8s} {check:70s} {value:15.3g}")


if __name__ == "__main__":
    main()
