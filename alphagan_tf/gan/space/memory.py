"""Sizes that can never fit: the memory a GAN of given sizes needs, against this machine's.

A size is refused before anything is allocated when even a lower bound of what it needs
exceeds the machine's memory (`--gf=100000` asked for 360 GB of weights and ended in a
ResourceExhaustedError traceback). The bounds count only what the architecture cannot do
without, in float32 (4 bytes), so a size that could fit is never refused:

    generator weights          latent_dim * bw^2 * gf    the stem's Dense (bw = bottom_width)
                               + 9 * gf^2                3 cells x 3 normal edges, each at least
                                                         a 1x1 conv gf -> gf (cells.py)
    discriminator weights      64 * df^2                 7 3x3 convs and one 1x1 conv df -> df
                                                         (discriminator.py)
    generator activations      3 * gf * (8 bw)^2         cell 3 holds at least three of its
      of one image (inference)                           [8 bw, 8 bw, gf] nodes at once
                (training)     4 * gf * ((2 bw)^2 + (4 bw)^2 + (8 bw)^2)   every node of every
                                                         cell is kept for the backward pass
    discriminator activations  2 * df * (8 bw)^2         block 1's two convs at full resolution
    real images                3 * (8 bw)^2

`require_sizes_fit` (GeneratorConfig) checks each network's weights and one image's
activations; `require_batches_fit` (TrainConfig, SearchConfig) checks a batch's
activations with the smallest networks (gf = df = latent_dim = bottom_width = 1), the only
sizes a batch size alone can be judged with. What fits alone but not together still runs
out of memory in TensorFlow, and `cli_errors` reports that as one line, exit 2.

The machine's memory is its physical memory, or its cgroup limit when lower; where it
cannot be read, nothing is refused.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from alphagan_tf.utils.typed_config import require

FLOAT_BYTES = 4
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def machine_memory_bytes() -> int | None:
    """Physical memory, or the cgroup's limit when lower; None where it cannot be read."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    for path in _CGROUP_LIMITS:
        try:
            with open(path) as f:
                limit = f.read().strip()
        except OSError:
            continue
        if limit.isdigit():  # "max": no limit
            total = min(total, int(limit))
    return total


def generator_weights(gf: int, latent_dim: int, bottom_width: int) -> int:
    """A lower bound of the fixed (or search) generator's parameter count."""
    return latent_dim * bottom_width**2 * gf + 9 * gf**2


def discriminator_weights(df: int) -> int:
    """A lower bound of the discriminator's parameter count."""
    return 64 * df**2


def generator_activations(gf: int, bottom_width: int, training: bool) -> int:
    """A lower bound of the floats one image needs inside the generator."""
    if training:
        return 4 * gf * sum((2**k * bottom_width) ** 2 for k in (1, 2, 3))
    return 3 * gf * (8 * bottom_width) ** 2


def discriminator_activations(df: int, bottom_width: int) -> int:
    """A lower bound of the floats one image needs inside the discriminator."""
    return 2 * df * (8 * bottom_width) ** 2


def training_bytes_per_image(gf: int, df: int, bottom_width: int) -> int:
    """A lower bound of the bytes one image of a training batch needs (G, D, the image)."""
    side = 8 * bottom_width
    floats = (generator_activations(gf, bottom_width, training=True)
              + discriminator_activations(df, bottom_width) + 3 * side**2)
    return FLOAT_BYTES * floats


def readable_bytes(n: float) -> str:
    """1.5e9 -> "1.5 GB" (decimal units)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    power = 0
    while n >= 1000 and power < len(units) - 1:
        n, power = n / 1000, power + 1
    return f"{n:.0f} B" if power == 0 else f"{n:.1f} {units[power]}"


def require_sizes_fit(config: Any) -> None:
    """Refuses sizes whose generator or discriminator alone cannot fit in this machine's memory.

    Args:
        config: a `GeneratorConfig` (gf, df, latent_dim, bottom_width; each an int >= 1).

    Raises:
        ConfigError: naming the size to lower (the one whose default would fit), with the
            estimate and the machine's memory.
    """
    available = machine_memory_bytes()
    if available is None:
        return
    # The paper's sizes (the dataclass defaults): what a culprit is compared with.
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    sizes = {name: getattr(config, name) for name in ("gf", "df", "latent_dim", "bottom_width")}

    def generator_need(s):
        return FLOAT_BYTES * (generator_weights(s["gf"], s["latent_dim"], s["bottom_width"])
                              + generator_activations(s["gf"], s["bottom_width"], training=False))

    def discriminator_need(s):
        return FLOAT_BYTES * (discriminator_weights(s["df"])
                              + discriminator_activations(s["df"], s["bottom_width"]))

    for network, need, fields in (
        ("generator", generator_need, ("gf", "latent_dim", "bottom_width")),
        ("discriminator", discriminator_need, ("df", "bottom_width")),
    ):
        total = need(sizes)
        if total <= available:
            continue
        # The size to lower: the first whose default (when smaller) would fit; else the one
        # furthest above its default.
        culprit = next(
            (f for f in fields
             if need({**sizes, f: min(sizes[f], defaults[f])}) <= available),
            max(fields, key=lambda f: sizes[f] / defaults[f]),
        )
        shown = ", ".join(f"{f}={sizes[f]}" for f in fields)
        require(False, culprit, sizes[culprit],
                f"too large for this machine: a {network} of {shown} needs at least "
                f"{readable_bytes(total)} (weights and one image's activations, float32), "
                f"and this machine has {readable_bytes(available)}")


def require_batches_fit(config: Any, *names: str) -> None:
    """Refuses batch sizes whose activations cannot fit even with the smallest networks.

    Args:
        config: a config whose named fields are batch sizes (ints >= 1).

    Raises:
        ConfigError: naming the batch size, with the estimate and the machine's memory.
    """
    available = machine_memory_bytes()
    if available is None:
        return
    per_image = training_bytes_per_image(gf=1, df=1, bottom_width=1)
    for name in names:
        batch = getattr(config, name)
        require(batch * per_image <= available, name, batch,
                f"too large for this machine: a training batch of {batch} images needs at "
                f"least {readable_bytes(batch * per_image)} of activations even with the "
                "smallest networks (gf = df = latent_dim = bottom_width = 1), and this machine "
                f"has {readable_bytes(available)}")
