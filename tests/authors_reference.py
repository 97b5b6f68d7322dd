"""The authors' PyTorch AlphaGAN, imported on CPU as a test oracle (never by the product).

`../shared/ref/AlphaGAN` is the unmodified public implementation (PyTorch 1.3,
written for CUDA; see `../shared/ref/README.md`). To run its model path on a
CPU-only machine, `load()` does, in this test process only:

- `.cuda()` on tensors and modules returns them unchanged, and
  `torch.cuda.FloatTensor` is `torch.FloatTensor` (CPU float32);
- the imports its modules make for code the model path does not use (IS / FID
  utilities with TensorFlow 1.x, torchvision, imageio, tensorboardX, tqdm) are
  stubbed (tqdm passes its iterable through, and writes nothing);
- `torch.autograd.set_detect_anomaly` (switched on in every cell forward) is a
  no-op: it only slows autograd down;
- `np.random.normal`, where the reference draws latents, can be replaced by a
  queue of arrays (`LatentQueue`) so that both implementations see the same z.

Everything is skipped (pytest.skip) when torch or the reference is absent.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import sys
import types

import numpy as np
import pytest

REFERENCE_DIR = os.environ.get(
    "ALPHAGAN_REFERENCE_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "ref", "AlphaGAN"),
)
# The normal-op and up-op lists the authors' README searches with (ours, in our order).
NORMAL_PRIMITIVES = "PRIMITIVES_NORMAL_GEN_wo_skip_none_sep"
UP_PRIMITIVES = "PRIMITIVES_UP"

_STUBBED = (
    "imageio",
    "tensorboardX",
    "tqdm",
    "torchvision",
    "torchvision.utils",
    "torchvision.datasets",
    "utils.fid_score",
    "utils.inception_score",
)


class Reference(types.SimpleNamespace):
    """The loaded modules: torch, model_search_gan, alphaGAN_network, genotypes, functions, architect."""


_loaded: Reference | None = None


def load() -> Reference:
    """Imports the authors' modules on CPU (once per process), or skips the test."""
    global _loaded
    if _loaded is not None:
        return _loaded
    torch = pytest.importorskip("torch", reason="torch (CPU) is in the test extra")
    if not os.path.isfile(os.path.join(REFERENCE_DIR, "models", "model_search_gan.py")):
        pytest.skip(f"the authors' implementation is not at {os.path.abspath(REFERENCE_DIR)}")

    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self

    torch.cuda.FloatTensor = torch.FloatTensor  # a type for .type(), a constructor of ndarrays
    torch.autograd.set_detect_anomaly = lambda *args, **kwargs: None
    for name in _STUBBED:
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["imageio"].imsave = None
    sys.modules["tensorboardX"].SummaryWriter = None
    def tqdm(iterable, *args, **kwargs):
        return iterable

    tqdm.write = lambda *args, **kwargs: None
    sys.modules["tqdm"].tqdm = tqdm
    sys.modules["torchvision.utils"].make_grid = None
    sys.modules["utils.fid_score"].calculate_fid_given_paths = None
    sys.modules["utils.inception_score"].get_inception_score = None

    path = os.path.abspath(REFERENCE_DIR)
    if path not in sys.path:
        sys.path.insert(0, path)
    import architect  # noqa: E402  (the reference's own top-level modules)
    import functions
    import models.alphaGAN_network as alphagan_network
    import models.genotypes as genotypes
    import models.model_search_gan as model_search_gan

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    _loaded = Reference(
        torch=torch,
        model_search_gan=model_search_gan,
        alphagan_network=alphagan_network,
        genotypes=genotypes,
        functions=functions,
        architect=architect,
    )
    return _loaded


@contextlib.contextmanager
def precision(dtype: str):
    """The reference computes in `dtype` ("float32" or "float64") inside the block.

    Its code makes every tensor float32 through `torch.cuda.FloatTensor`
    (latents, `imgs.type(...)`) and builds modules (the worst-case copies) with
    torch's default dtype; both follow `dtype` here, and are restored after.
    """
    torch = load().torch
    tensor_type = {"float32": torch.FloatTensor, "float64": torch.DoubleTensor}[dtype]
    previous = (torch.cuda.FloatTensor, torch.get_default_dtype())
    torch.cuda.FloatTensor = tensor_type
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        yield
    finally:
        torch.cuda.FloatTensor, default = previous
        torch.set_default_dtype(default)


@contextlib.contextmanager
def keras_dtype_policy(dtype: str):
    """Our layers built inside use `dtype` (Keras' global dtype policy, restored after)."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def args(**overrides) -> argparse.Namespace:
    """The authors' search/retraining arguments (their README's values, small widths by default)."""
    values = dict(
        gf_dim=16,
        df_dim=16,
        latent_dim=8,
        bottom_width=4,
        channels=3,
        num_classes=10,
        d_spectral_norm=True,
        gen_normal_opr=NORMAL_PRIMITIVES,
        gen_up_opr=UP_PRIMITIVES,
        dis_normal_opr="PRIMITIVES_NORMAL_DIS",
        update_alphas=True,
        t=0.5,
        gen="Network_gen_Auto",
        dis="Discriminator",
        gen_batch_size=4,
        g_lr=2e-4,
        d_lr=2e-4,
        beta1=0.0,
        beta2=0.9,
        arch_learning_rate=3e-4,
        arch_weight_decay=1e-3,
        momentum=0.9,
        weight_decay=3e-4,
        n_critic=5,
        inner_steps=20,
        worst_steps=20,
        outter_steps=1,
        only_update_w_g=True,
        only_update_alpha_g=False,
        only_update_alpha=False,
        use_train_val=False,
        unrolled=False,
        fix_alphas_epochs=-1,
        parallel=False,
    )
    values.update(overrides)
    return argparse.Namespace(**values)


class LatentQueue:
    """Stands in for `np.random.normal` in the reference's `functions` module.

    Every call pops the next queued array (its shape must be the one asked for),
    so the reference sees exactly the latents the test gives our implementation.
    """

    def __init__(self):
        self._queue: collections.deque = collections.deque()
        self.real_random = np.random

    def push(self, *arrays: np.ndarray) -> None:
        self._queue.extend(np.asarray(a, np.float64) for a in arrays)

    def normal(self, loc=0.0, scale=1.0, size=None):
        if not self._queue:
            raise AssertionError("the reference drew more latents than the test queued")
        value = self._queue.popleft()
        if size is not None and tuple(value.shape) != tuple(size):
            raise AssertionError(f"the reference asked for {size}, the queue holds {value.shape}")
        return loc + scale * value

    def __len__(self) -> int:
        return len(self._queue)


class _NumpyWithQueuedNormal:
    """numpy, except that `random.normal` pops from a `LatentQueue`."""

    def __init__(self, queue: LatentQueue):
        self.random = types.SimpleNamespace(normal=queue.normal)

    def __getattr__(self, name):
        return getattr(np, name)


def patch_latents(monkeypatch, module) -> LatentQueue:
    """Replaces `np.random.normal` as `module` sees it by a `LatentQueue`."""
    queue = LatentQueue()
    monkeypatch.setattr(module, "np", _NumpyWithQueuedNormal(queue))
    return queue


def to_numpy_state(module) -> dict[str, np.ndarray]:
    """A module's state dict as numpy arrays."""
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def load_numpy_state(module, tensors: dict[str, np.ndarray]) -> None:
    """module.load_state_dict from numpy arrays (strict), alphas set from their attribute names."""
    torch = load().torch
    state = {k: torch.from_numpy(np.asarray(v)) for k, v in tensors.items() if not k.startswith("alphas_")}
    module.load_state_dict(state, strict=True)
    for name, value in tensors.items():
        if name.startswith("alphas_"):
            getattr(module, name).data.copy_(torch.from_numpy(np.asarray(value, np.float32)))


def reference_genotype(genotype):
    """Our `Genotype` as the authors' `Genotype_gen` namedtuple."""
    ref = load()
    cells = genotype.cells
    return ref.genotypes.Genotype_gen(
        normal={str(c + 1): [(op, i) for i, op in enumerate(cell.normal)] for c, cell in enumerate(cells)},
        up={str(c + 1): [(op, i) for i, op in enumerate(cell.up)] for c, cell in enumerate(cells)},
        skip_2=[(op, i) for i, op in enumerate(genotype.skip_2)],
        skip_3=[(op, i) for i, op in enumerate(genotype.skip_3)],
    )


def retraining_init(module, init_type: str = "xavier_uniform") -> None:
    """What `train_geno_gan.py` does to G and D before retraining (`--init_type`).

    Its `weights_init` is a function nested in `main()`, so it cannot be imported:
    this applies the same rule with `module.apply` (the same visiting order). A
    module whose class name contains "Conv2d" (Conv2d, also inside spectral norm,
    whose `weight.data` is `weight_orig`'s storage before the first forward; not
    ConvTranspose2d) gets its weight drawn by `init_type`; a BatchNorm2d gets weight
    N(1, 0.02) and bias 0. Everything else (Linear, ConvTranspose2d, every bias of a
    conv) keeps PyTorch's default initialisation.
    """
    nn = load().torch.nn

    def init(m):
        name = m.__class__.__name__
        if "Conv2d" in name:
            if init_type == "normal":
                nn.init.normal_(m.weight.data, 0.0, 0.02)
            elif init_type == "orth":
                nn.init.orthogonal_(m.weight.data)
            elif init_type == "xavier_uniform":
                nn.init.xavier_uniform_(m.weight.data, 1.0)
            else:
                raise ValueError(f"unknown init_type {init_type!r}")
        elif "BatchNorm2d" in name:
            nn.init.normal_(m.weight.data, 1.0, 0.02)
            nn.init.constant_(m.bias.data, 0.0)

    module.apply(init)


@contextlib.contextmanager
def oracle(dtype: str, seed: int = 0, threads: int | None = None):
    """The reference ready for one comparison: yields (modules, latent queue).

    Inside, its `functions.np.random.normal` pops from the returned `LatentQueue`,
    torch and Keras build and compute in `dtype` (`precision`, `keras_dtype_policy`),
    torch's generator is seeded with `seed` and, if given, torch runs `threads`
    threads; all restored after. One thread: torch's OpenMP threads spin at every
    barrier, and on a machine whose cores other processes share its float64
    convolutions ran ~80x slower with 2 threads than with 1 (measured: the
    reference's side of tests/test_parity_train.py, 71 s against 0.9 s).
    """
    ref = load()
    monkeypatch = pytest.MonkeyPatch()
    previous_threads = ref.torch.get_num_threads()
    try:
        queue = patch_latents(monkeypatch, ref.functions)
        if threads:
            ref.torch.set_num_threads(threads)
        with precision(dtype), keras_dtype_policy(dtype):
            ref.torch.manual_seed(seed)
            yield ref, queue
    finally:
        ref.torch.set_num_threads(previous_threads)
        monkeypatch.undo()
