"""Same weights in, same numbers out: our networks against the authors' PyTorch modules.

The authors' implementation (`../shared/ref/AlphaGAN`, imported on CPU by
`authors_reference.py`; skipped when it or torch is absent) builds each network
with random weights; the weight bridge (`alphagan_tf.interop.bridge`) copies
them into ours, and both run on the same latents / images:

- the fixed generator of alphaGAN(l) and alphaGAN(s) at bottom width 4 and 6,
  and the retraining discriminator: outputs in inference mode (moving batch-norm
  statistics; stored spectral-norm vectors) and in training mode (batch
  statistics; one power iteration), and the state after a training call;
- the supernet generator and the search discriminator with the same alphas:
  outputs (float32), and the gradients of the hinge losses w.r.t. every weight
  and every alpha. The gradients are compared in float64 (both implementations
  run in float64: `keras.config.set_dtype_policy`, `module.double()`): in float32 a
  gradient is not a continuous function of the forward pass's rounding, because
  ReLU inputs within rounding of zero flip sides. Measured on this test's
  supernet: perturbing cell 3's node 1 by 1e-6 relative changed the gradient
  w.r.t. it by 5.6e-3 relative (1e-7: 4e-7), so two correct float32
  implementations (ours with and without fused convs, measured against
  PyTorch's float64 gradients: 8.5e-3 and 1.1e-6) can differ by more than 1e-4
  at a kink. In float64 they agree to ~1e-12, far inside the 1e-4 asked for;
- the bridge both ways (ours -> PyTorch state dict -> ours is the identity).

Widths are small (gf = df = 16) so that the file runs in seconds; nothing in
the maths depends on the width.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import tensorflow as tf

import authors_reference as ar
from alphagan_tf.gan.space.discriminator import Discriminator
from alphagan_tf.gan.space.generator import Generator
from alphagan_tf.gan.space.genotypes import PRESETS
from alphagan_tf.gan.space.search_generator import SearchGenerator
from alphagan_tf.gan.train import losses
from alphagan_tf.interop import bridge

GF = DF = 16
LATENT = 8
BATCH = 4
OUTPUT_TOL = 1e-5  # float32, absolute on tanh images / relative on D logits
GRAD_TOL = 1e-4  # relative


@pytest.fixture(scope="module")
def ref():
    return ar.load()


def _nchw(x):
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


def _nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


def _randomize_batch_norms(module, torch, generator):
    """Non-trivial moving statistics and affine parameters (PyTorch starts at 0 / 1)."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5, generator=generator)
            m.running_var.uniform_(0.5, 2.0, generator=generator)
            if m.affine:
                m.weight.data.uniform_(0.5, 1.5, generator=generator)
                m.bias.data.uniform_(-0.5, 0.5, generator=generator)


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):  # the reference prints debug lines
        return fn(*args)


def _max_state_difference(torch_module, ours):
    theirs = ar.to_numpy_state(torch_module)
    mine = bridge.state_dict(ours, include_alphas=False)
    return max(
        float(np.abs(theirs[k].astype(np.float64) - mine[k]).max())
        for k in theirs
        if not k.endswith("num_batches_tracked")
    )


@pytest.mark.parametrize("bottom_width", [4, 6])
@pytest.mark.parametrize("preset", ["alphaGAN_l", "alphaGAN_s"])
def test_fixed_generator_equals_the_authors(ref, preset, bottom_width):
    torch = ref.torch
    rng = torch.Generator().manual_seed(bottom_width)
    torch.manual_seed(0)
    args = ar.args(gf_dim=GF, latent_dim=LATENT, bottom_width=bottom_width)
    theirs = _quiet(ref.alphagan_network.Network_gen_Auto, args,
                    ar.reference_genotype(PRESETS[preset]))
    _randomize_batch_norms(theirs, torch, rng)
    ours = Generator(PRESETS[preset], gf=GF, latent_dim=LATENT, bottom_width=bottom_width)
    bridge.load_state_dict(ours, ar.to_numpy_state(theirs), source="the authors' generator")
    z = np.random.RandomState(1).normal(size=(BATCH, LATENT)).astype(np.float32)
    side = 8 * bottom_width

    theirs.eval()
    with torch.no_grad():
        expected = _nhwc(theirs(torch.from_numpy(z)).numpy())
    got = ours(z, training=False).numpy()
    assert got.shape == (BATCH, side, side, 3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=OUTPUT_TOL)

    theirs.train()
    with torch.no_grad():
        expected = _nhwc(theirs(torch.from_numpy(z)).numpy())
    got = ours(z, training=True).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=OUTPUT_TOL)
    # The training call moved the batch-norm statistics alike (PyTorch's unbiased update).
    assert _max_state_difference(theirs, ours) < 1e-6


def test_retraining_discriminator_equals_the_authors(ref):
    torch = ref.torch
    torch.manual_seed(0)
    theirs = ref.alphagan_network.Discriminator(ar.args(df_dim=DF))
    ours = Discriminator(df=DF)
    bridge.load_state_dict(ours, ar.to_numpy_state(theirs))
    images = np.random.RandomState(2).uniform(-1, 1, (BATCH, 32, 32, 3)).astype(np.float32)
    theirs.train()
    for _ in range(2):  # training calls: one power iteration each, u and v stored
        with torch.no_grad():
            expected = theirs(torch.from_numpy(_nchw(images))).numpy()
        got = ours(images, training=True).numpy()
        np.testing.assert_allclose(got, expected, rtol=OUTPUT_TOL, atol=OUTPUT_TOL)
        assert _max_state_difference(theirs, ours) < 1e-6
    theirs.eval()
    with torch.no_grad():
        expected = theirs(torch.from_numpy(_nchw(images))).numpy()
    before = [v.numpy().copy() for v in ours.non_trainable_variables]
    got = ours(images, training=False).numpy()
    np.testing.assert_allclose(got, expected, rtol=OUTPUT_TOL, atol=OUTPUT_TOL)
    # Inference reads u and v as stored, without iterating.
    for a, b in zip(before, ours.non_trainable_variables):
        np.testing.assert_array_equal(a, b.numpy())


def _supernet_pair(ref, fuse_convs, dtype="float32"):
    """The authors' supernet G and search D, and ours with their weights and alphas."""
    torch = ref.torch
    torch.manual_seed(0)
    args = ar.args(gf_dim=GF, df_dim=DF, latent_dim=LATENT)
    theirs_g = _quiet(ref.model_search_gan.Network_gen_Auto, args)
    theirs_d = ref.model_search_gan.Discriminator(args)
    theirs_g.cur_stage = theirs_d.cur_stage = 2  # what search.py sets: all four D blocks
    rng = np.random.RandomState(3)
    for alpha in theirs_g.arch_parameters():  # far from uniform, so the mixture matters
        alpha.data.copy_(torch.from_numpy(rng.normal(size=tuple(alpha.shape)).astype(np.float32)))
    _randomize_batch_norms(theirs_g, torch, torch.Generator().manual_seed(3))
    with ar.keras_dtype_policy(dtype):
        ours_g = SearchGenerator(gf=GF, latent_dim=LATENT, bottom_width=4, fuse_convs=fuse_convs)
        ours_d = Discriminator(df=DF)
    state = ar.to_numpy_state(theirs_g)
    state.update({name: getattr(theirs_g, name).detach().numpy()
                  for name in bridge.search_generator_alphas(ours_g)})
    bridge.load_state_dict(ours_g, state, alphas="required")
    bridge.load_state_dict(ours_d, ar.to_numpy_state(theirs_d))
    if dtype == "float64":
        theirs_g.double()
        theirs_d.double()
        for name in bridge.search_generator_alphas(ours_g):  # attributes, not parameters
            setattr(theirs_g, name, getattr(theirs_g, name).detach().double().requires_grad_(True))
    return theirs_g, theirs_d, ours_g, ours_d


def _shift_only(name: str) -> bool:
    """Biases whose gradient is mathematically zero in training mode.

    What cell 3's normal[1] and normal[2] edges and its x2 skip edge add into its
    node 4 goes straight into the head's training-mode batch norm, which removes a
    per-channel shift: a bias there changes nothing. (The x4 skip's deconv bias
    passes through the second application of the same transposed conv, which
    mixes channels per output phase: not a pure shift.) Both sides hold float
    noise for these gradients.
    """
    return name.endswith(".bias") and name.startswith(
        ("cell3._normal_ops.1.", "cell3._normal_ops.2.", "cell3._mixed_ops_prev.1."))


def _assert_gradients_equal(ours_grads, their_grads):
    """Per tensor max|ours - theirs| / max|theirs| < GRAD_TOL; shift-only biases ~ 0 on both."""
    assert set(ours_grads) == set(their_grads)
    largest = max(float(np.abs(g).max()) for g in their_grads.values())
    errors = {}
    for name, g in their_grads.items():
        if _shift_only(name):
            assert np.abs(g).max() < 1e-5 * largest and np.abs(ours_grads[name]).max() < 1e-5 * largest
        else:
            errors[name] = float(np.abs(ours_grads[name] - g).max()) / float(np.abs(g).max())
    worst = sorted(errors.items(), key=lambda kv: -kv[1])[:3]
    assert worst[0][1] < GRAD_TOL, worst
    return worst[0][1]


@pytest.mark.parametrize("fuse_convs", [True, False])
def test_supernet_and_search_discriminator_outputs_equal_the_authors(ref, fuse_convs):
    torch = ref.torch
    theirs_g, theirs_d, ours_g, ours_d = _supernet_pair(ref, fuse_convs)
    rng = np.random.RandomState(4)
    z = rng.normal(size=(BATCH, LATENT)).astype(np.float32)
    real = rng.uniform(-1, 1, (BATCH, 32, 32, 3)).astype(np.float32)
    theirs_g.eval()
    with torch.no_grad():
        expected = _nhwc(_quiet(theirs_g, torch.from_numpy(z)).numpy())
    np.testing.assert_allclose(ours_g(z, training=False).numpy(), expected, atol=OUTPUT_TOL)
    theirs_g.train()
    theirs_d.train()
    with torch.no_grad():
        fake_t = _quiet(theirs_g, torch.from_numpy(z))
        logits_t = [theirs_d(torch.from_numpy(_nchw(real))).numpy(), theirs_d(fake_t).numpy()]
    fake = ours_g(z, training=True)
    np.testing.assert_allclose(fake.numpy(), _nhwc(fake_t.numpy()), atol=OUTPUT_TOL)
    logits = [ours_d(real, training=True).numpy(), ours_d(fake, training=True).numpy()]
    for got, expected in zip(logits, logits_t):
        np.testing.assert_allclose(got, expected, rtol=OUTPUT_TOL, atol=OUTPUT_TOL)


@pytest.mark.parametrize("fuse_convs", [True, False])
def test_hinge_loss_gradients_of_every_weight_and_alpha_equal_the_authors(ref, fuse_convs):
    """Float64 on both sides (module docstring): to 1e-4 relative, measured ~1e-12."""
    torch = ref.torch
    theirs_g, theirs_d, ours_g, ours_d = _supernet_pair(ref, fuse_convs, dtype="float64")
    rng = np.random.RandomState(4)
    z = rng.normal(size=(BATCH, LATENT))
    real = rng.uniform(-1, 1, (BATCH, 32, 32, 3))
    z_t, real_t = torch.from_numpy(z), torch.from_numpy(_nchw(real))

    # Discriminator hinge loss (G in training mode, as in the search), D's gradients.
    theirs_g.train()
    theirs_d.train()
    fake_t = _quiet(theirs_g, z_t)
    d_loss_t = torch.mean(torch.relu(1 - theirs_d(real_t))) + torch.mean(
        torch.relu(1 + theirs_d(fake_t.detach())))
    d_loss_t.backward()
    with tf.GradientTape() as tape:
        fake = ours_g(z, training=True)
        d_loss = losses.hinge_discriminator_loss(
            ours_d(real, training=True), ours_d(tf.stop_gradient(fake), training=True))
    assert float(d_loss) == pytest.approx(float(d_loss_t.detach()), rel=1e-10)
    d_entries = [e for e in bridge.discriminator_entries(ours_d) if e.variable.trainable]
    grads = tape.gradient(d_loss, [e.variable for e in d_entries])
    ours_grads = {e.torch_name: e.layout.to_torch(g.numpy()) for e, g in zip(d_entries, grads)}
    their_grads = {n: p.grad.numpy() for n, p in theirs_d.named_parameters()}
    assert _assert_gradients_equal(ours_grads, their_grads) < 1e-9

    # Generator hinge loss: gradients of every supernet weight and every alpha.
    theirs_d.zero_grad()
    g_loss_t = -torch.mean(theirs_d(_quiet(theirs_g, z_t)))
    g_loss_t.backward()
    g_entries = [e for e in bridge.search_generator_entries(ours_g) if e.variable.trainable]
    alpha_rows = bridge.search_generator_alphas(ours_g)
    alpha_vars = [v for rows in alpha_rows.values() for v in rows]
    with tf.GradientTape() as tape:
        g_loss = losses.hinge_generator_loss(ours_d(ours_g(z, training=True), training=True))
    assert float(g_loss) == pytest.approx(float(g_loss_t.detach()), rel=1e-10)
    grads = tape.gradient(g_loss, [e.variable for e in g_entries] + alpha_vars)
    ours_grads = {e.torch_name: e.layout.to_torch(g.numpy()) for e, g in zip(g_entries, grads)}
    their_grads = {n: p.grad.numpy() for n, p in theirs_g.named_parameters()}
    assert _assert_gradients_equal(ours_grads, their_grads) < 1e-9

    alpha_grads = iter(grads[len(g_entries):])
    ours_alpha = {name: np.stack([next(alpha_grads).numpy() for _ in rows])
                  for name, rows in alpha_rows.items()}
    their_alpha = {name: getattr(theirs_g, name).grad.numpy() for name in alpha_rows}
    assert all(np.abs(g).max() > 0 for g in their_alpha.values())
    assert _assert_gradients_equal(ours_alpha, their_alpha) < 1e-9


def test_bridge_round_trip_and_torch_load_state_dict(ref):
    """ours -> the authors' state dict -> the authors' module -> back: the identity."""
    torch = ref.torch
    ours = SearchGenerator(gf=GF, latent_dim=LATENT, bottom_width=4)
    for v in ours.variables:
        v.assign(np.random.RandomState(len(v.path)).normal(size=v.shape).astype(np.float32))
    theirs = _quiet(ref.model_search_gan.Network_gen_Auto, ar.args(gf_dim=GF, latent_dim=LATENT))
    ar.load_numpy_state(theirs, bridge.state_dict(ours))  # strict: every name, every shape
    back = SearchGenerator(gf=GF, latent_dim=LATENT, bottom_width=4)
    state = ar.to_numpy_state(theirs)
    state.update({n: getattr(theirs, n).detach().numpy() for n in bridge.search_generator_alphas(back)})
    bridge.load_state_dict(back, state, alphas="required")
    for a, b in zip(ours.variables, back.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
