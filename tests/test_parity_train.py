"""The retraining loop against the authors' `train_geno_gan.py` loop, step for step.

The authors' training function runs as it is (`functions.train`, one epoch of
K x n_critic batches), with what `train_geno_gan.py` gives it: its init
(`--init_type xavier_uniform`, `authors_reference.retraining_init`), Adam on
each player, `LinearLrDecay` on both (`--lr_decay`), and `gen_avg_param`, the EMA
list. Ours (`GANTrainer.train_iteration`, compiled steps, `lr_decay` on) runs K
iterations from the same weights (moved over by `alphagan_tf.interop.bridge`), on
the same batches, with the same latents (the reference's `np.random.normal` is
fed from a queue; `_QueuedLatentTrainer._latents` reads the same arrays). Per
iteration: n_critic D steps (D batch latents each), one G step (G batch
latents), the rate update, the EMA update. The reference runs on one torch thread
(`authors_reference.oracle`: with two, its float64 convolutions spun ~80x slower on
these shared cores). K = 3, n_critic = 2, D batch 4,
G batch 6, gf = df = 16, alphaGAN(s) (sep convs with affine norms, deconv at x2
and x4, nearest, bilinear, conv_1x1); the decay starts at D step 2 and ends at
K x n_critic = 6, so the three iterations run at lr_0, at a decayed rate and past
the end (the rate left unchanged).

Then every weight and buffer of G and D (batch-norm statistics, spectral-norm
u and v), every Adam moment and step count, every EMA weight, both learning
rates and the losses of each iteration must agree. In float64 (both sides:
`authors_reference.precision`, Keras' dtype policy) they agree to 1e-10
(measured: 3.5e-13 or less, the rates exactly; the shift-only biases below 2.9e-11).

Aligned for the test, documented in the README ("Where we differ") and
docs/parity_train.md:
- the reference's global step starts at 1 here (as when it resumes): from 0, its
  first G step follows its first D step, then every n_critic-th; ours follow
  each iteration's n_critic D steps. With the offset its G steps and rate updates
  fall where ours do;
- its `LinearLrDecay` returns (and logs) lr_0 / 100 past the end but leaves the
  optimizer's rate unchanged: the test compares the rate the optimizer holds.

Shift-only biases. In alphaGAN(s), the last batch norms' biases of cell 3's
normal edges 1 and 2 add a per-channel constant to node 4, which the head's
training-mode batch norm removes: their gradient is mathematically zero and
numerically float noise on both sides. Adam (beta_1 = 0) moves a weight by
lr * g / (sqrt(v / c2) + eps), v a running mean of g^2: for noise far below eps,
by ~lr * g / eps. So these biases (and the head norm's moving mean, which absorbs their shift)
differ by ~lr x noise / eps: 2.9e-11 in float64 (held to 1e-9), 5.9e-4 (~3 lr)
in float32, where the noise approaches eps (held to Adam's bound, `_adam_bound`).

Float32, both sides (measured here; max |ours - theirs| / max |theirs| over the
tensors of each group, after the 3 iterations): G weights 1.1e-5 (a batch norm's
bias that started at 0: 6.7e-9 absolute), D weights and spectral-norm vectors
3.0e-7, batch-norm statistics 3.1e-7, Adam moments 8.7e-5 (G) and 1.3e-6 (D), EMA
weights 9.6e-6 (a bias of size 1.3e-6: 1.2e-11 absolute), losses 3.2e-7. The
float32 test prints them and holds them to 1e-3 (losses 1e-5).
"""

from __future__ import annotations

import contextlib
import io
import types

import numpy as np
import pytest
import tensorflow as tf

import authors_reference as ar
from alphagan_tf.gan.space.discriminator import Discriminator
from alphagan_tf.gan.space.generator import Generator
from alphagan_tf.gan.space.genotypes import PRESETS
from alphagan_tf.gan.train import lr_decay
from alphagan_tf.gan.train.config import TrainConfig
from alphagan_tf.gan.train.step import GANTrainer
from alphagan_tf.interop import bridge

GF = DF = 16
LATENT = 8
D_BATCH, G_BATCH = 4, 6  # different, so a latent drawn at the wrong batch size cannot pass
N_CRITIC = 2
ITERATIONS = 3  # K G iterations = 6 D steps + 3 G steps, rate and EMA updates
DECAY_START = 2  # D steps: iteration 1 at lr_0, 2 decayed, 3 past the end (unchanged)
GENOTYPE = "alphaGAN_s"
BETAS = (0.0, 0.9)
# Biases with a mathematically zero gradient, and the moving mean that absorbs their shift.
SHIFT_ONLY = ("cell3._normal_ops.1.op.7.bias", "cell3._normal_ops.2.op.7.bias",
              "to_rgb.0.running_mean")


class _Writer:
    """The reference's SummaryWriter: keeps what it is given."""

    def __init__(self):
        self.scalars: dict[str, list[float]] = {}

    def add_scalar(self, name, value, step):
        self.scalars.setdefault(name, []).append(float(value))


class _RecordingLrDecay:
    """The reference's `LinearLrDecay` as `train_geno_gan.py` builds it, recording the
    rate its optimizer holds after each call (past the end it returns lr_0 / 100, but
    leaves the optimizer's rate as it was)."""

    def __init__(self, ref, optimizer, lr, start, end):
        self.scheduler = ref.functions.LinearLrDecay(optimizer, lr, lr * 0.01, start, end)
        self.optimizer = optimizer
        self.rates: list[float] = []

    def step(self, current_step):
        value = self.scheduler.step(current_step)
        self.rates.append(self.optimizer.param_groups[0]["lr"])
        return value


class _QueuedLatentTrainer(GANTrainer):
    """Our trainer, its latents read in order from queues the test fills (one per batch size).

    `_latents(batch_size)` is called once per step inside the compiled steps: it reads
    row `position` of that batch size's queue and advances the position.
    """

    def __init__(self, *args, latents: dict[int, np.ndarray], **kwargs):
        self.queues = {
            size: (tf.Variable(z, trainable=False), tf.Variable(0, dtype=tf.int64, trainable=False))
            for size, z in latents.items()
        }
        super().__init__(*args, **kwargs)

    def _latents(self, batch_size: int) -> tf.Tensor:
        queue, position = self.queues[batch_size]
        z = tf.gather(queue, position)
        position.assign_add(1)
        return z


def _nchw(x):
    return ar.load().torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def _f32(x: float) -> float:
    """x as float32 holds it: where Keras keeps a constant rate (a float32 variable)."""
    return float(np.float32(x))


def _without_counts(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _torch_state(module) -> dict[str, np.ndarray]:
    return _without_counts(ar.to_numpy_state(module))


def _our_state(model) -> dict[str, np.ndarray]:
    return _without_counts(bridge.state_dict(model))


def run_both(dtype: str) -> dict:
    """K iterations of the authors' `functions.train` and of ours, from the same state."""
    with ar.oracle(dtype, threads=1) as (ref, queue):
        torch = ref.torch
        args = ar.args(
            gf_dim=GF, df_dim=DF, latent_dim=LATENT, gen_batch_size=G_BATCH,
            dis_batch_size=D_BATCH, n_critic=N_CRITIC, g_lr=_f32(2e-4), d_lr=_f32(2e-4),
            beta1=BETAS[0], beta2=BETAS[1], loss_type="hinge_loss", print_freq=1,
            max_epoch=1, max_iter=ITERATIONS,
        )
        genotype = PRESETS[GENOTYPE]
        with contextlib.redirect_stdout(io.StringIO()):
            theirs_g = ref.alphagan_network.Network_gen_Auto(args, ar.reference_genotype(genotype))
        theirs_d = ref.alphagan_network.Discriminator(args)
        ar.retraining_init(theirs_g)  # the paper's command: --init_type xavier_uniform
        ar.retraining_init(theirs_d)
        initial = {name: {k: v.copy() for k, v in _torch_state(module).items()}
                   for name, module in (("G", theirs_g), ("D", theirs_d))}

        ours_g = Generator(genotype, gf=GF, latent_dim=LATENT, bottom_width=4)
        ours_d = Discriminator(df=DF)
        ours_ema = Generator(genotype, gf=GF, latent_dim=LATENT, bottom_width=4)
        bridge.load_state_dict(ours_g, ar.to_numpy_state(theirs_g))
        bridge.load_state_dict(ours_d, ar.to_numpy_state(theirs_d))

        rng = np.random.RandomState(7)
        steps = ITERATIONS * N_CRITIC
        real = rng.uniform(-1, 1, (steps, D_BATCH, 32, 32, 3)).astype(dtype)
        z_d = rng.normal(size=(steps, D_BATCH, LATENT)).astype(dtype)
        z_g = rng.normal(size=(ITERATIONS, G_BATCH, LATENT)).astype(dtype)

        config = TrainConfig(
            g_iterations=ITERATIONS, n_critic=N_CRITIC, g_batch_size=G_BATCH,
            d_batch_size=D_BATCH, g_lr=args.g_lr, d_lr=args.d_lr, beta_1=BETAS[0],
            beta_2=BETAS[1], ema_decay=0.999, lr_decay=True, lr_decay_start=DECAY_START,
        )
        trainer = _QueuedLatentTrainer(
            ours_g, ours_d, ours_ema, image_shape=(32, 32, 3), config=config,
            latents={D_BATCH: z_d, G_BATCH: z_g},
        )

        # Theirs: train_geno_gan.py's optimizers, schedulers (end: max_iter x n_critic)
        # and EMA list; its global step starts at 1 (module docstring).
        g_opt = torch.optim.Adam([p for p in theirs_g.parameters() if p.requires_grad],
                                 args.g_lr, BETAS)
        d_opt = torch.optim.Adam([p for p in theirs_d.parameters() if p.requires_grad],
                                 args.d_lr, BETAS)
        end = args.max_iter * args.n_critic
        schedulers = (_RecordingLrDecay(ref, g_opt, args.g_lr, DECAY_START, end),
                      _RecordingLrDecay(ref, d_opt, args.d_lr, DECAY_START, end))
        avg = ref.functions.copy_params(theirs_g)
        writer = _Writer()
        loader = [(_nchw(batch), torch.zeros(D_BATCH)) for batch in real]
        for i in range(ITERATIONS):
            queue.push(*z_d[i * N_CRITIC:(i + 1) * N_CRITIC], z_g[i])
        with contextlib.redirect_stdout(io.StringIO()):  # it prints debug lines
            ref.functions.train(args, theirs_g, theirs_d, g_opt, d_opt, avg, loader, 0,
                                {"writer": writer, "train_global_steps": 1}, False, schedulers)
        assert len(queue) == 0, "the reference drew fewer latents than queued"

        batches = iter(tf.data.Dataset.from_tensor_slices(real))
        ours = {"d_loss": [], "g_loss": [], "g_lr": [], "d_lr": []}
        for _ in range(ITERATIONS):
            metrics = trainer.train_iteration(batches)
            ours["d_loss"].append(float(metrics["d_loss"]))
            ours["g_loss"].append(float(metrics["g_loss"]))
            ours["g_lr"].append(float(trainer.g_optimizer.learning_rate))
            ours["d_lr"].append(float(trainer.d_optimizer.learning_rate))
        drawn = {size: int(position.numpy()) for size, (_, position) in trainer.queues.items()}
        assert drawn == {D_BATCH: ITERATIONS * N_CRITIC, G_BATCH: ITERATIONS}, drawn
    d_losses = np.reshape(writer.scalars["d_loss"], (ITERATIONS, N_CRITIC))
    theirs = {"d_loss": list(d_losses.mean(axis=1)), "g_loss": writer.scalars["g_loss"],
              "g_lr": schedulers[0].rates, "d_lr": schedulers[1].rates}
    return {
        "trainer": trainer, "ours": ours, "theirs": theirs, "initial": initial,
        "modules": {"g": theirs_g, "d": theirs_d, "g_opt": g_opt, "d_opt": d_opt, "avg": avg},
    }


def compared_tensors(run: dict) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """{group: {name: (ours, theirs)}} in PyTorch layout, float64."""
    trainer, modules = run["trainer"], run["modules"]
    groups: dict[str, dict[str, tuple]] = {}
    for name, model, module, optimizer in (
        ("G", trainer.generator, modules["g"], modules["g_opt"]),
        ("D", trainer.discriminator, modules["d"], modules["d_opt"]),
    ):
        ours, theirs = _our_state(model), _torch_state(module)
        assert set(ours) == set(theirs), set(ours) ^ set(theirs)
        groups[name] = {k: (ours[k], theirs[k]) for k in theirs}
        params = dict(module.named_parameters())
        our_optimizer = getattr(trainer, f"{name.lower()}_optimizer")
        moments = {}
        for entry in bridge.entries_for(model):
            if entry.variable.trainable:
                state = optimizer.state[params[entry.torch_name]]
                for slot, key in zip(our_optimizer.moments(entry.variable), ("exp_avg", "exp_avg_sq")):
                    moments[f"{entry.torch_name}.{key}"] = (
                        entry.layout.to_torch(np.asarray(slot)), state[key].detach().numpy())
        groups[f"{name} Adam moments"] = moments
    names = [n for n, _ in modules["g"].named_parameters()]
    ema = _our_state(trainer.ema_generator)
    groups["EMA G"] = {n: (ema[n], a.numpy()) for n, a in zip(names, modules["avg"])}
    # The reference averages parameters only; where it uses the average (`validate`, the
    # checkpoint's avg_gen_state_dict) the batch-norm statistics are G's own, which ours copies.
    g_state = _torch_state(modules["g"])
    groups["EMA G buffers"] = {n: (ema[n], g_state[n]) for n in g_state if n not in names}
    return {group: {k: (np.asarray(a, np.float64), np.asarray(b, np.float64))
                    for k, (a, b) in tensors.items()} for group, tensors in groups.items()}


def _absolute(pair) -> float:
    ours, theirs = pair
    return float(np.abs(ours - theirs).max())


def _relative(pair) -> float:
    ours, theirs = pair
    return _absolute(pair) / max(float(np.abs(theirs).max()), 1e-30)


def _largest(run: dict, measure, shift_only: bool) -> dict[str, float]:
    return {
        group: max((measure(pair) for name, pair in tensors.items()
                    if any(name.startswith(s) for s in SHIFT_ONLY) == shift_only), default=0.0)
        for group, tensors in compared_tensors(run).items()
    }


def _adam_bound(rates: list[float]) -> float:
    """The most two Adam (beta_1 = 0) trajectories of a weight can part in len(rates) steps.

    With beta_1 = 0 each step moves a weight by lr_t g / (sqrt(v_t / c2_t) + eps) and
    v_t >= (1 - beta_2) g^2, so by at most lr_t sqrt(c2_t / (1 - beta_2)), c2_t = 1 - beta_2^t.
    """
    beta_2 = BETAS[1]
    return 2 * sum(lr * np.sqrt((1 - beta_2 ** t) / (1 - beta_2)) for t, lr in enumerate(rates, 1))


def test_linear_decay_follows_the_authors_schedule_over_a_whole_run():
    """`lr_decay.linear_decay` against the reference's `LinearLrDecay` over the paper's run.

    The reference's loop calls it after each G step with its global step (from 1, as
    aligned above); ours reads the G iterations done. Sampled around the start, the end
    and every 97th iteration of 50k, with n_critic 5 and the decay from 260 x 782 D steps.
    """
    ref = ar.load()
    n_critic, g_iterations, start = 5, 50_000, 260 * 782
    end = g_iterations * n_critic
    optimizer = types.SimpleNamespace(param_groups=[{"lr": 2e-4}])
    theirs_scheduler = ref.functions.LinearLrDecay(optimizer, 2e-4, 2e-6, start, end)
    done = tf.Variable(0, dtype=tf.int64)
    ours = lr_decay.linear_decay(2e-4, done, n_critic, start, end)
    sampled = set(range(0, g_iterations + 1, 97)) | set(range(start // n_critic - 3, start // n_critic + 3))
    sampled |= set(range(g_iterations - 3, g_iterations + 1))
    theirs = {0: 2e-4}
    for iteration in range(1, g_iterations + 1):  # G step `iteration` at global step iteration x n
        theirs_scheduler.step(iteration * n_critic)
        theirs[iteration] = optimizer.param_groups[0]["lr"]
    for iteration in sorted(sampled):
        done.assign(iteration)
        assert float(ours()) == theirs[iteration], iteration  # the same operations in float64
    assert theirs[start // n_critic] == 2e-4 and theirs[start // n_critic + 1] < 2e-4
    assert theirs[g_iterations] == theirs[g_iterations - 1] == pytest.approx(2e-6 + 5 * 1.98e-4 / (end - start))


def test_lr_decay_must_start_before_it_ends():
    assert TrainConfig(g_iterations=10, n_critic=5, lr_decay=True, lr_decay_start=49).lr_decay
    with pytest.raises(ValueError, match=r"lr_decay_start.*50"):
        TrainConfig(g_iterations=10, n_critic=5, lr_decay=True, lr_decay_start=50)
    TrainConfig(g_iterations=10, n_critic=5, lr_decay_start=50)  # off: not checked


@pytest.fixture(scope="module")
def float64_run():
    return run_both("float64")


def test_every_weight_moment_and_ema_weight_equal_the_authors_in_float64(float64_run):
    """G, D (with batch-norm statistics and spectral-norm vectors), Adam, the EMA."""
    differences = _largest(float64_run, _absolute, shift_only=False)
    print(f"\nfloat64, max |ours - theirs| after {ITERATIONS} iterations: {differences}")
    assert max(differences.values()) < 1e-10, differences
    shift_only = _largest(float64_run, _absolute, shift_only=True)
    print(f"shift-only biases and the moving mean absorbing them: {shift_only}")
    assert max(shift_only.values()) < 1e-9, shift_only
    trainer, modules = float64_run["trainer"], float64_run["modules"]
    for our_optimizer, optimizer, steps in ((trainer.d_optimizer, modules["d_opt"], 6),
                                            (trainer.g_optimizer, modules["g_opt"], 3)):
        assert int(our_optimizer.iterations) == steps
        assert {int(s["step"]) for s in optimizer.state.values()} == {steps}


def test_learning_rates_and_losses_of_every_iteration_equal_the_authors(float64_run):
    ours, theirs = float64_run["ours"], float64_run["theirs"]
    print(f"\nours {ours}\ntheirs {theirs}")
    for key in ("g_lr", "d_lr"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-15, atol=0, err_msg=key)
    # lr_0 up to D step 2, then lr_0 - (lr_0 - lr_0 / 100) / (6 - 2) x (4 - 2), kept past the end.
    lr_0 = _f32(2e-4)
    decayed = lr_0 - 0.99 * lr_0 / 4 * 2
    np.testing.assert_allclose(ours["g_lr"], [lr_0, decayed, decayed], rtol=1e-12)
    for key in ("d_loss", "g_loss"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-10, atol=0, err_msg=key)


def test_the_compared_state_moved(float64_run):
    """The comparison is not of untouched weights: every player and the EMA moved."""
    trainer, initial = float64_run["trainer"], float64_run["initial"]
    for name, model in (("G", trainer.generator), ("D", trainer.discriminator)):
        ours = _our_state(model)
        moved = [float(np.abs(ours[k] - initial[name][k]).max()) for k in initial[name]
                 if k.endswith(("weight", "weight_orig"))]
        assert min(moved) > 1e-6, (name, min(moved))
    ema, g = _our_state(trainer.ema_generator), _our_state(trainer.generator)
    weights = [k for k in initial["G"] if k.endswith("weight")]
    assert min(float(np.abs(ema[k] - initial["G"][k]).max()) for k in weights) > 1e-9
    assert min(float(np.abs(ema[k] - g[k]).max()) for k in weights) > 1e-7  # an average, not G


def test_float32_differences_are_rounding(capsys):
    """Both sides in float32: the differences the module docstring reports."""
    run = run_both("float32")
    relative = _largest(run, _relative, shift_only=False)
    shift_only = _largest(run, _absolute, shift_only=True)
    losses = {key: max(abs(a - b) / abs(b) for a, b in zip(run["ours"][key], run["theirs"][key]))
              for key in ("d_loss", "g_loss")}
    with capsys.disabled():
        print(f"\nfloat32, max |ours - theirs| / max |theirs| per tensor after {ITERATIONS} "
              f"iterations: {relative}\nlosses (relative): {losses}\n"
              f"shift-only (absolute): {shift_only}, Adam's bound "
              f"{_adam_bound(run['theirs']['g_lr']):.2e}")
    assert max(relative.values()) < 1e-3, relative
    assert max(losses.values()) < 1e-5, losses
    assert max(shift_only.values()) <= _adam_bound(run["theirs"]["g_lr"]), shift_only


# -- initialisation -------------------------------------------------------------------------

def _uniform(bound):
    return ("uniform", bound)


ZEROS, ONES = ("constant", 0.0), ("constant", 1.0)


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """PyTorch's fan_in, fan_out of a weight [out, in, *kernel] (ConvTranspose2d: [in, out, ...])."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def initialisation_rules(module_type: str, parameter: str, weight_shape: tuple[int, ...]):
    """(the reference's rule, ours) for one parameter: what docs/parity_train.md tabulates.

    The reference: `train_geno_gan.py --init_type xavier_uniform` (Conv2d weights, also
    depthwise and pointwise, and D's under spectral norm; BatchNorm2d N(1, 0.02) and 0),
    PyTorch's defaults elsewhere (kaiming_uniform(a=sqrt(5)) weights and U(+-1/sqrt(fan_in))
    biases: both bound 1/sqrt(fan_in)). Ours: glorot_uniform kernels (the same bound as
    xavier: it depends on fan_in + fan_out only), zero biases, batch norms 1 and 0.
    """
    if module_type == "BatchNorm2d":
        return (("normal", 1.0, 0.02), ONES) if parameter == "weight" else (ZEROS, ZEROS)
    fan_in, fan_out = _fans(weight_shape)
    default = _uniform(1 / np.sqrt(fan_in))
    if parameter == "bias":
        return default, ZEROS
    glorot = _uniform(np.sqrt(6 / (fan_in + fan_out)))
    if module_type == "Conv2d":
        return glorot, glorot
    return default, glorot  # Linear (l1, D's l5), ConvTranspose2d (deconv)


def _follows(values: np.ndarray, rule) -> bool:
    values = values.astype(np.float64).ravel()
    if rule[0] == "constant":
        return bool(np.all(values == rule[1]))
    if rule[0] == "normal":
        _, mean, std = rule
        return abs(values.mean() - mean) < 5 * std / np.sqrt(values.size) and 0.5 < values.std() / std < 1.5
    bound = rule[1]
    if np.abs(values).max() > bound * (1 + 1e-6):
        return False
    return values.size < 64 or 0.7 < values.std() / (bound / np.sqrt(3)) < 1.3


def test_initialisation_differs_from_the_authors_only_where_documented():
    """Every parameter of G and D follows its rule in `initialisation_rules` on each side,
    and the rules differ where docs/parity_train.md says (conv biases, batch-norm weights,
    the stem's Linear, the deconvs, D's last Linear)."""
    ref = ar.load()
    torch = ref.torch
    torch.manual_seed(0)
    args = ar.args(gf_dim=32, df_dim=32, latent_dim=LATENT)
    genotype = PRESETS[GENOTYPE]
    with contextlib.redirect_stdout(io.StringIO()):
        theirs_g = ref.alphagan_network.Network_gen_Auto(args, ar.reference_genotype(genotype))
    theirs_d = ref.alphagan_network.Discriminator(args)
    ours_g = Generator(genotype, gf=32, latent_dim=LATENT, bottom_width=4)
    ours_d = Discriminator(df=32)
    ours_g(tf.zeros([1, LATENT]), training=False)
    ours_d(tf.zeros([1, 32, 32, 3]), training=False)
    differing, checked = set(), 0
    for module, ours in ((theirs_g, ours_g), (theirs_d, ours_d)):
        ar.retraining_init(module)
        state = _our_state(ours)
        for prefix, m in module.named_modules():
            parameters = dict(m.named_parameters(recurse=False))
            weight = parameters.get("weight", parameters.get("weight_orig"))  # spectral norm's
            for name, parameter in parameters.items():
                theirs_rule, ours_rule = initialisation_rules(
                    type(m).__name__, name.replace("_orig", ""), tuple(weight.shape))
                key = f"{prefix}.{name}"
                assert _follows(parameter.detach().numpy(), theirs_rule), (key, theirs_rule)
                assert _follows(state[key], ours_rule), (key, ours_rule)
                checked += 1
                if theirs_rule != ours_rule:
                    differing.add((type(m).__name__, name.replace("_orig", "")))
    assert checked == sum(1 for net in (theirs_g, theirs_d) for _ in net.parameters())
    assert differing == {("Conv2d", "bias"), ("ConvTranspose2d", "weight"), ("ConvTranspose2d", "bias"),
                         ("BatchNorm2d", "weight"), ("Linear", "weight"), ("Linear", "bias")}

