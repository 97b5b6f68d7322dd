"""An authors' retraining checkpoint becomes our training workdir.

    import_training_checkpoint("checkpoint.pth", genotype, bottom_width=4, out_dir="runs/ag_l")

writes what `python -m alphagan_tf.train` writes, so that `alphagan_tf.export`,
`evaluate` and `sample` work on it (and `train` continues it):

    train_config.json   sizes read off the tensors (gf, df, latent_dim) and --bottom_width
    genotype.json       the genotype given
    checkpoints/        generator, discriminator, EMA generator, both Adam states
                        (PyTorch's moments and step, as `nas/adam.PyTorchAdam` keeps
                        them), G iterations done (= the generator Adam's step)
    converted_from.json the source file, its sha256, epoch and best FID

Everything is checked before anything is written (the genotype against the
tensor names, every shape, the optimizer states), and the workdir is built in a
temporary folder next to `out_dir` and renamed into place at the end: an error
leaves nothing behind, and an existing non-empty `out_dir` is never touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from alphagan_tf.gan.space.discriminator import Discriminator
from alphagan_tf.gan.space.generator import Generator
from alphagan_tf.gan.space.generator_config import GeneratorConfig
from alphagan_tf.gan.train.config import TrainConfig, TrainRunConfig
from alphagan_tf.gan.train.step import GANTrainer
from alphagan_tf.interop import bridge
from alphagan_tf.interop.checkpoint import (
    CheckpointError,
    TrainingCheckpoint,
    adam_moments,
    read_training_checkpoint,
)
from alphagan_tf.utils import files


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def infer_sizes(checkpoint: TrainingCheckpoint, bottom_width: int, path: str) -> dict:
    """gf, latent_dim (from the stem Linear) and df (from the first D conv)."""
    stem = checkpoint.generator.get("l1.weight")
    if stem is None or np.ndim(stem) != 2:
        raise CheckpointError(f"{path}: the generator has no stem Linear 'l1.weight' [gf*bw*bw, latent].")
    rows, latent_dim = (int(d) for d in np.shape(stem))
    if rows % (bottom_width * bottom_width):
        raise CheckpointError(
            f"{path}: the stem Linear has {rows} outputs, not a multiple of bottom_width^2 = "
            f"{bottom_width ** 2}: check --bottom_width (4 for 32x32, 6 for 48x48)."
        )
    sizes = {"gf": rows // (bottom_width * bottom_width), "latent_dim": latent_dim, "df": None}
    if checkpoint.discriminator is not None:
        first = checkpoint.discriminator.get("block1.c1.weight_orig")
        if first is None:
            first = checkpoint.discriminator.get("block1.c1.weight")
        if first is None:
            raise CheckpointError(f"{path}: the discriminator has no block1.c1 conv.")
        sizes["df"] = int(np.shape(first)[0])
    return sizes


def _load(model, tensors, path, what):
    try:
        bridge.load_state_dict(model, tensors, source=f"{path} ({what})")
    except bridge.StateDictMismatchError as e:
        raise CheckpointError(str(e)) from None


def _load_adam(optimizer, model, optimizer_state, module_state, path, what) -> int:
    """PyTorch Adam moments into our optimizer; returns its step (0 when absent)."""
    if not optimizer_state:
        return 0
    try:
        moments = adam_moments(optimizer_state, module_state)
    except CheckpointError as e:
        raise CheckpointError(f"{path} ({what}): {e}") from None
    steps = {m["step"] for m in moments.values()}
    if len(steps) > 1:
        raise CheckpointError(f"{path} ({what}): parameters at different Adam steps {sorted(steps)}.")
    entries = {e.torch_name: e for e in bridge.entries_for(model)}
    for name, slot in moments.items():
        entry = entries[name]
        m, v = optimizer.moments(entry.variable)
        m.assign(entry.layout.to_keras(slot["exp_avg"]).astype(np.float32))
        v.assign(entry.layout.to_keras(slot["exp_avg_sq"]).astype(np.float32))
    step = steps.pop() if steps else 0
    optimizer.iterations.assign(step)
    return step


def import_training_checkpoint(path: str, genotype, bottom_width: int, out_dir: str) -> dict:
    """Converts the authors' checkpoint at `path` into a training workdir `out_dir`.

    Args:
        path: `checkpoint.pth` of `train_geno_gan.py` (or a bare generator state dict).
        genotype: the `Genotype` the checkpoint was trained with.
        bottom_width: 4 (32x32) or 6 (48x48), as the authors' --bottom_width.
        out_dir: the new workdir; must not exist or be empty.

    Returns:
        What was converted: sizes, G iterations, source (also in converted_from.json).

    Raises:
        CheckpointError: the file is unreadable, of another genotype or size (every
            mismatching tensor named), or `out_dir` is not empty. Nothing is written.
        TorchMissingError: torch is not installed.
    """
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise CheckpointError(f"--out={out_dir} exists and is not empty: give a new directory.")
    checkpoint = read_training_checkpoint(path)
    sizes = infer_sizes(checkpoint, bottom_width, path)

    def generator():
        return Generator(genotype, gf=sizes["gf"], latent_dim=sizes["latent_dim"],
                         bottom_width=bottom_width)

    df = sizes["df"] or 128
    side = 8 * bottom_width
    trainer = GANTrainer(
        generator(), Discriminator(df=df), generator(), image_shape=(side, side, 3),
        config=TrainConfig(),
    )
    _load(trainer.generator, checkpoint.generator, path, "gen_state_dict")
    _load(trainer.ema_generator, checkpoint.ema_generator, path, "avg_gen_state_dict")
    if checkpoint.discriminator is not None:
        _load(trainer.discriminator, checkpoint.discriminator, path, "dis_state_dict")
    g_steps = _load_adam(trainer.g_optimizer, trainer.generator, checkpoint.generator_optimizer,
                         checkpoint.generator, path, "gen_optimizer")
    _load_adam(trainer.d_optimizer, trainer.discriminator, checkpoint.discriminator_optimizer,
               checkpoint.discriminator or {}, path, "dis_optimizer")
    trainer.g_iterations_done.assign(g_steps)

    source = {
        "file": os.path.abspath(path),
        "sha256": _sha256(path),
        "format": "train_geno_gan.py checkpoint" if checkpoint.discriminator is not None
        else "generator state dict",
        "epoch": checkpoint.epoch,
        "best_fid": checkpoint.best_fid,
        "g_iterations": g_steps,
        "has_discriminator": checkpoint.discriminator is not None,
        **sizes,
        "df": df,
        "bottom_width": bottom_width,
    }
    config = TrainRunConfig(
        genotype="genotype.json",
        model=GeneratorConfig(gf=sizes["gf"], df=df, latent_dim=sizes["latent_dim"],
                              bottom_width=bottom_width),
    )
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out_dir))}.", dir=parent)
    try:
        files.write_json_atomic(os.path.join(staging, "train_config.json"), config.to_dict())
        files.write_text_atomic(os.path.join(staging, "genotype.json"), genotype.to_json())
        files.write_json_atomic(os.path.join(staging, "converted_from.json"), source)
        manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**trainer.checkpoint_items()),
            os.path.join(staging, "checkpoints"), max_to_keep=3,
        )
        manager.save(checkpoint_number=g_steps)
        if os.path.isdir(out_dir):
            os.rmdir(out_dir)  # empty (checked above)
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return source
