"""The GAN's size: what every command builds its generator and discriminator with.

`GeneratorConfig` is written by `search` and `train` (inside their run configs)
and read back, typed, by `train --init_from`, `evaluate`, `export` and `tune`:
no command reads another's JSON by raw keys.
"""

from __future__ import annotations

import dataclasses

from alphagan_tf.gan.space import memory
from alphagan_tf.utils.typed_config import TypedConfig, require_positive


@dataclasses.dataclass(frozen=True)
class GeneratorConfig(TypedConfig):
    """Channels, latent size and resolution (defaults: the paper's CIFAR-10 networks).

    Attributes:
        gf: generator channels (every cell).
        df: discriminator channels.
        latent_dim: size of the latent vector z.
        bottom_width: spatial size after the stem's Dense; images are 8x larger
            (4 -> 32x32, 6 -> 48x48).
    """

    gf: int = 256
    df: int = 128
    latent_dim: int = 128
    bottom_width: int = 4

    def __post_init__(self):
        require_positive(self, "gf", "df", "latent_dim", "bottom_width")
        memory.require_sizes_fit(self)  # what can never fit is refused before it is built

    @property
    def image_size(self) -> int:
        return 8 * self.bottom_width

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)
