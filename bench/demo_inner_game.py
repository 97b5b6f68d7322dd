r"""The demo search's inner GAN game, isolated: digit classes and z-variance per epoch.

    python bench/demo_inner_game.py --classifier=runs/demo_classifier             # demo.cfg's search
    python bench/demo_inner_game.py --classifier=runs/demo_classifier --skip_arch  # inner level only
    ... --weight_data=full           # weight steps on all 1797 digits, not the 899-image half
    ... --onehot=alphaGAN_s          # supernet alphas one-hot on a genotype (with --skip_arch)
    ... --probe                      # z-variance fraction of the stem, each cell and the image
    ... --ema=0.9,0.99               # also sample EMAs of G's weights (moving and batch BN)
    ... --mbstd                      # experiment: D sees a minibatch-stddev channel
    ... --d_warmup=100               # experiment: D steps against the initial G first
    ... --r1=10                      # R1 penalty on D (the demo's fix: --r1_gamma)
    ... --bottom_width=1             # the digits' native 8x8 (a quarter of the 16x16 cost)

Builds the search's players (`gan.search.alphagan.build_searcher`) with demo.cfg's sizes and the
knobs below, runs epochs (`BilevelSearcher.run_epoch`, or with --skip_arch only the inner
level's D/G steps), and after each epoch prints the demo classifier's digit classes among the
64 fixed-latent samples (inference mode, what samples.png shows) and their diversity ratio.
The probe's "fraction/rms" is Var_z / (Var_z + mean_z^2) and the RMS of a feature map over
64 latents (training-mode batch norm): 1 = all z-dependent, 0 = one template for every z.
Used for the README's "The demo's collapse" (issue 18).
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import keras
import tensorflow as tf

from alphagan_tf.gan.space.generator_config import GeneratorConfig
from alphagan_tf.gan.search.config import SearchRunConfig
from alphagan_tf.gan.search.alphagan import build_searcher
from alphagan_tf.gan.search.config import SearchConfig
from alphagan_tf.nas.arch_optimizer import ArchOptimizerConfig
from alphagan_tf.data.pipeline import images_pipeline, scale_images, search_datasets
from alphagan_tf.data.sources import load_demo
from alphagan_tf.metrics import diversity
from alphagan_tf.metrics.features import ClassifierFeatures
from alphagan_tf.utils import seeding

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--classifier", default="runs/demo_classifier")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--epochs", type=int, default=20)
p.add_argument("--inner", type=int, default=24)
p.add_argument("--worst", type=int, default=10)
p.add_argument("--outer", type=int, default=10)
p.add_argument("--n_critic", type=int, default=2)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--gf", type=int, default=32)
p.add_argument("--df", type=int, default=32)
p.add_argument("--latent", type=int, default=32)
p.add_argument("--bottom_width", type=int, default=2,
               help="1 = the digits' native 8x8 (samples resized to 16x16 for the classifier)")
p.add_argument("--g_lr", type=float, default=2e-4)
p.add_argument("--d_lr", type=float, default=2e-4)
p.add_argument("--beta1", type=float, default=0.0)
p.add_argument("--arch_lr", type=float, default=3e-4)
p.add_argument("--arch_wd", type=float, default=1e-3)
p.add_argument("--weight_data", default="half", choices=["half", "full"])
p.add_argument("--skip_arch", action="store_true", help="no worst/arch phases at all")
p.add_argument("--tag", default="")
p.add_argument("--probe", action="store_true")
p.add_argument("--onehot", default="")
p.add_argument("--mbstd", action="store_true",
               help="experiment: D sees a minibatch-stddev channel in place of the 3rd (equal) colour channel")
p.add_argument("--d_warmup", type=int, default=0,
               help="experiment: D steps against the initial G before the first epoch")
p.add_argument("--r1", type=float, default=0.0,
               help="R1 penalty on D (SearchConfig.r1_gamma, gan/train/r1.py); 0 = none, as the paper")
p.add_argument("--ema", default="", help="comma-separated EMA decays of G's weights to sample too")
a = p.parse_args()

seeding.seed_everything(a.seed)
tf.config.experimental.enable_op_determinism()
cfg = SearchRunConfig(
    search=SearchConfig(inner_steps=a.inner, worst_steps=a.worst, outer_steps=a.outer,
                        n_critic=a.n_critic, batch_size=a.batch,
                        g_lr=a.g_lr, d_lr=a.d_lr, beta_1=a.beta1, r1_gamma=a.r1,
                        arch=ArchOptimizerConfig(learning_rate=a.arch_lr, weight_decay=a.arch_wd)),
    model=GeneratorConfig(gf=a.gf, df=a.df, latent_dim=a.latent, bottom_width=a.bottom_width), seed=a.seed)
size = 8 * a.bottom_width
data = search_datasets("demo", image_size=size, batch_size=a.batch, seed=a.seed)
weight = data.weight
if a.weight_data == "full":
    weight = images_pipeline(load_demo(size), batch_size=a.batch, seed=a.seed, stream=2)
t0 = time.process_time()
if a.mbstd:
    import keras
    from alphagan_tf.gan.search import alphagan
    from alphagan_tf.gan.space.discriminator import Discriminator

    class MinibatchStdD(keras.Model):
        def __init__(self, df):
            super().__init__()
            self.inner = Discriminator(df=df)
        def call(self, x, training=None):
            mean = tf.reduce_mean(x, 0, keepdims=True)
            std = tf.sqrt(tf.reduce_mean(tf.square(x - mean), 0) + 1e-8)
            feature = tf.reduce_mean(std) * tf.ones_like(x[..., :1])
            return self.inner(tf.concat([x[..., :2], feature], -1), training=training)  # digits: 3 equal channels

    _orig = alphagan.build_players
    def _players(config, synchronized_bn=False):
        g, _ = _orig(config, synchronized_bn)
        return g, MinibatchStdD(config.model.df)
    alphagan.build_players = _players
s = build_searcher(cfg)
wb, ab = iter(weight), iter(data.arch)
if a.onehot:
    from alphagan_tf.gan.space.genotypes import load_genotype
    s.generator.set_alphas_from_genotype(load_genotype(a.onehot))
from alphagan_tf.gan.train.ema import WeightEMA
from alphagan_tf.gan.search.config import build_players
emas = []
for decay in [float(x) for x in a.ema.split(",") if x]:
    copy = build_players(cfg)[0]
    copy(tf.zeros([2, a.latent]), training=False)
    emas.append((decay, copy, WeightEMA(s.generator, copy, decay)))
    emas[-1][2].initialize()
ema_updates = [tf.function(e.update, autograph=False) for _, _, e in emas]
def update_emas():
    for u in ema_updates:
        u()
if emas:  # every generator step of run_epoch updates the averages too
    _g_step = s.g_step
    def _g_step_and_emas():
        loss = _g_step()
        update_emas()
        return loss
    s.g_step = _g_step_and_emas
classify = ClassifierFeatures(a.classifier)
digits = load_demo(16)
real = scale_images(digits[np.random.default_rng(0).choice(len(digits), 64, replace=False)]).numpy()
z = tf.random.stateless_normal([64, a.latent], seed=[a.seed, 1234])
rows = []
for _ in range(a.d_warmup):
    s.d_step(next(wb))
if a.d_warmup:
    print(f"{a.tag} D warm-up: {a.d_warmup} steps, D loss {float(s.d_step(next(wb))):.3f}", flush=True)
for e in range(1, a.epochs + 1):
    if a.skip_arch:
        dl, gl = [], []
        for _ in range(a.inner):
            due = int(s.d_steps_done.numpy()) % a.n_critic == 0
            dl.append(float(s.d_step(next(wb))))
            if due:
                gl.append(float(s.g_step()))
        m = {"d_loss": np.mean(dl), "g_loss": np.mean(gl)}
    else:
        m = s.run_epoch(wb, ab, epoch=e)
    fake = s.generator(z, training=False)
    if size != 16:  # the classifier and the real reference are 16x16
        fake = tf.image.resize(tf.cast(fake, tf.float32), [16, 16], method="bilinear")
    fake = np.asarray(fake, np.float64)
    if a.probe:
        g = s.generator
        def frac(t):
            t = np.asarray(t, np.float64); v = t.var(0).mean(); m = (t.mean(0) ** 2).mean()
            return f"{v / (v + m):.2f}/{np.sqrt(v + m):.2f}"
        x = g.stem(z); c1, c2, c3 = g.gen_cells
        out = ["stem " + frac(x)]
        x, k1 = c1(x, training=True); out.append("c1 " + frac(x))
        x, k2 = c2(x, skip_inputs=[k1], training=True); out.append("c2 " + frac(x))
        x, _ = c3(x, skip_inputs=[k1, k2], training=True); out.append("c3 " + frac(x))
        pre = g.head.conv(keras.ops.relu(g.head.norm(x, training=True)))
        img = np.tanh(np.asarray(pre, np.float64))
        out.append("pre-tanh " + frac(pre))
        out.append("img " + frac(img))
        out.append(f"saturated(|x|>0.99) {np.mean(np.abs(img) > 0.99):.2f} |pre| {np.mean(np.abs(pre)):.2f}")
        print("   probe z-var-fraction/rms:", " ".join(out), flush=True)
    logits = classify(fake)["logits"]
    h = diversity.class_histogram(logits)
    hc = diversity.class_histogram(logits, num_classes=10, min_confidence=0.9)
    r = diversity.diversity_ratio(fake, real)
    rows.append((e, diversity.distinct_classes(h), r))
    print(f"{a.tag} epoch {e:2d} classes {diversity.distinct_classes(h):2d} R {r:.3f} hist {h.tolist()} conf {diversity.distinct_classes(hc)} "
          f"d {m.get('d_loss', float('nan')):.3f} g {m.get('g_loss', float('nan')):.3f} cpu {time.process_time()-t0:.0f}", flush=True)
    for decay, copy, _ in emas:
        for mode in (False, True):
            f = np.asarray(copy(z, training=mode), np.float64)
            hh = diversity.class_histogram(classify(f)["logits"], num_classes=10)
            print(f"{a.tag}   ema {decay} {'batchBN' if mode else 'movingBN'} classes "
                  f"{diversity.distinct_classes(hh):2d} R {diversity.diversity_ratio(f, real):.3f} hist {hh.tolist()}", flush=True)
print(a.tag, "FINAL", json.dumps(rows[-1]), "genotype", " ".join(s.generator.genotype().ops()))
