"""Reading the authors' PyTorch checkpoint files safely, into numpy.

The authors' retraining script (`train_geno_gan.py`) saves, every epoch, with
`torch.save` (`utils.save_checkpoint`: `checkpoint.pth`, and `checkpoint_best.pth`
for the best FID) a dict:

    epoch                 epochs done (of the discriminator's data passes)
    gen_model, dis_model  module names (strings)
    gen_state_dict        the generator (`alphaGAN_network.Network_gen_Auto`)
    dis_state_dict        the discriminator (`alphaGAN_network.Discriminator`)
    avg_gen_state_dict    the generator holding the EMA weights (its buffers: the
                          generator's batch-norm statistics)
    gen_optimizer, dis_optimizer   `torch.optim.Adam` state dicts
    best_fid              a float (a numpy float64 once an FID was computed)
    path_helper           a dict of log paths

Its search script saves bare state dicts (`weights_gen_last.pt`, `weights_dis_last.pt`).

`read_torch_file` loads with `torch.load(weights_only=True)`: tensors, containers
and plain numbers only, plus numpy scalars and dtypes (what `best_fid` holds) on
an explicit allow-list; no other global is ever resolved, so reading a file
cannot execute code from it. torch is needed only here (`pip install -e '.[torch]'`).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import zipfile
from typing import Any, Mapping

import numpy as np

TRAINING_KEYS = ("gen_state_dict", "dis_state_dict", "avg_gen_state_dict")
BUFFER_SUFFIXES = (
    ".running_mean", ".running_var", ".num_batches_tracked", ".weight_u", ".weight_v",
)


class CheckpointError(ValueError):
    """A file is not a readable checkpoint of the expected kind (the message names it)."""


class TorchMissingError(ImportError):
    """torch is needed to read PyTorch files and is not installed."""


def _torch():
    try:
        # torch: an optional dependency (the [torch] extra)
        import torch
    except ImportError:
        raise TorchMissingError(
            "Reading the authors' PyTorch checkpoints needs torch (CPU is enough): "
            "pip install -e '.[torch]'"
        ) from None
    return torch


def _numpy_safe_globals() -> list:
    """numpy scalar reconstruction, allowed for weights_only loading (no code runs)."""
    core = getattr(np, "_core", None) or np.core
    allowed = [core.multiarray.scalar, np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


# The wordings of a refusal by torch's weights-only unpickler (torch/_weights_only_unpickler.py,
# 2.13), each naming what the pickle would import or call:
#   "Unsupported global: GLOBAL io.open was not an allowed global by default."
#   "Trying to load unsupported GLOBAL posix.system whose module posix is blocked."
#   "Trying to call reduce for unrecognized function <built-in function system>"
#   "Can only create new object for nn.Parameter or classes allowlisted ... but got <class 'x'>"
_CODE_PATTERNS = (
    re.compile(r"\bGLOBAL (\S+)"),
    re.compile(r"unrecognized function (<[^>]*>|\S+)"),
    re.compile(r"allowlisted via `add_safe_globals` but got (<[^>]*>|\S+)"),
)


def code_in_pickle(message: str) -> str | None:
    """What a weights-only load refused to import or run ("GLOBAL posix.system"), or None.

    Args:
        message: the text of torch's `UnpicklingError`.
    """
    for pattern in _CODE_PATTERNS:
        match = pattern.search(message)
        if match:
            found = match.group(1).rstrip(".,")
            return f"GLOBAL {found}" if pattern is _CODE_PATTERNS[0] else found
    return None


def read_torch_file(path: str) -> Any:
    """The object `torch.save` wrote to `path`, tensors converted to numpy arrays.

    Raises:
        TorchMissingError: torch is not installed.
        CheckpointError: the file is missing, truncated, not a PyTorch file, or
            holds code that weights-only loading refuses ("refused: the file holds code
            (GLOBAL posix.system)").
    """
    torch = _torch()
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file.")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        code = code_in_pickle(str(e))
        if code:
            raise CheckpointError(
                f"{path}: refused: the file holds code ({code}). A weights-only load reads "
                "tensors, containers and numbers and never runs it; loading it fully could."
            ) from None
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or another format)."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or another format): "
            f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        ) from None
    return _to_numpy(obj, torch)


def _to_numpy(obj: Any, torch) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, Mapping):
        return {k: _to_numpy(v, torch) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(v, torch) for v in obj)
    return obj


def _strip_data_parallel(state: Mapping[str, Any]) -> dict[str, Any]:
    """nn.DataParallel prefixes every name with 'module.'."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, np.ndarray) for v in obj.values())
    )


@dataclasses.dataclass
class TrainingCheckpoint:
    """The parts of an authors' retraining checkpoint, as numpy state dicts.

    `discriminator`, the optimizers and `epoch` are None for a bare generator
    state dict; `ema_generator` is then the generator itself.
    """

    generator: dict[str, np.ndarray]
    ema_generator: dict[str, np.ndarray]
    discriminator: dict[str, np.ndarray] | None = None
    generator_optimizer: dict | None = None
    discriminator_optimizer: dict | None = None
    epoch: int | None = None
    best_fid: float | None = None


def read_training_checkpoint(path: str) -> TrainingCheckpoint:
    """An authors' retraining checkpoint (or a bare generator state dict) from `path`.

    Raises:
        TorchMissingError, CheckpointError (see `read_torch_file`); CheckpointError
        also when the file holds something else (names what it holds).
    """
    obj = read_torch_file(path)
    if isinstance(obj, Mapping) and all(k in obj for k in TRAINING_KEYS):
        for key in TRAINING_KEYS:
            if not _is_state_dict(obj[key]):
                raise CheckpointError(f"{path}: {key} is not a state dict of tensors.")
        best_fid = obj.get("best_fid")
        return TrainingCheckpoint(
            generator=_strip_data_parallel(obj["gen_state_dict"]),
            ema_generator=_strip_data_parallel(obj["avg_gen_state_dict"]),
            discriminator=_strip_data_parallel(obj["dis_state_dict"]),
            generator_optimizer=obj.get("gen_optimizer"),
            discriminator_optimizer=obj.get("dis_optimizer"),
            epoch=int(obj["epoch"]) if obj.get("epoch") is not None else None,
            best_fid=float(best_fid) if best_fid is not None else None,
        )
    if _is_state_dict(obj) and "l1.weight" in _strip_data_parallel(obj):
        state = _strip_data_parallel(obj)
        return TrainingCheckpoint(generator=state, ema_generator=state)
    if isinstance(obj, Mapping):
        keys = sorted(str(k) for k in obj)[:8]
        raise CheckpointError(
            f"{path} is a PyTorch file but not an authors' retraining checkpoint (keys "
            f"{', '.join(TRAINING_KEYS)}) nor a generator state dict (key l1.weight). "
            f"It holds keys: {', '.join(keys)}{' ...' if len(obj) > 8 else ''}"
        )
    raise CheckpointError(
        f"{path} is a PyTorch file but holds a {type(obj).__name__}, not a checkpoint dict."
    )


def parameter_names(state: Mapping[str, Any]) -> list[str]:
    """The names of a module's parameters, in `module.parameters()` order.

    A state dict lists each module's parameters, then its buffers, module by
    module, so without the buffers it is the order `torch.optim` indexes
    parameters in (what an optimizer state dict's integer keys refer to).
    """
    return [k for k in state if not k.endswith(BUFFER_SUFFIXES)]


def adam_moments(optimizer_state: Mapping, state: Mapping[str, Any]) -> dict[str, dict]:
    """{parameter name: {"step", "exp_avg", "exp_avg_sq"}} of a `torch.optim.Adam` state dict.

    Raises:
        CheckpointError: the optimizer does not cover the module's parameters one to one.
    """
    names = parameter_names(state)
    groups = optimizer_state.get("param_groups", [])
    indices = [i for g in groups for i in g.get("params", [])]
    if len(indices) != len(names):
        raise CheckpointError(
            f"The optimizer state covers {len(indices)} parameters, the module has {len(names)}."
        )
    per_index = optimizer_state.get("state", {})
    out = {}
    for index, name in zip(indices, names):
        slot = per_index.get(index)
        if slot:
            out[name] = {
                "step": int(np.asarray(slot["step"]).reshape(-1)[0]),
                "exp_avg": np.asarray(slot["exp_avg"]),
                "exp_avg_sq": np.asarray(slot["exp_avg_sq"]),
            }
    return out
