"""Where a run's images come from, as a typed config (`--dataset`, `--data_dir`, ...)."""

from __future__ import annotations

import dataclasses

from alphagan_tf.data.sources import parse_source
from alphagan_tf.utils.typed_config import ConfigError, TypedConfig


@dataclasses.dataclass(frozen=True)
class DataConfig(TypedConfig):
    """An image source and where tfds keeps it.

    Attributes:
        dataset: demo, cifar10, stl10, tfds:NAME[:SPLIT], npz:PATH or folder:PATH
            (`data.sources.parse_source`; checked here, read later).
        data_dir: tfds data_dir holding prepared datasets.
        manual_dir: tfds manual_dir holding downloaded archives.
        download: let tfds download and prepare the dataset.
    """

    dataset: str = "demo"
    data_dir: str | None = None
    manual_dir: str | None = None
    download: bool = False

    def __post_init__(self):
        try:
            parse_source(self.dataset)
        except ValueError as error:
            raise ConfigError(f"dataset: {error}", key="dataset") from None

    def loader_kwargs(self) -> dict:
        """The keyword arguments of the `data.pipeline` builders."""
        return {"data_dir": self.data_dir, "manual_dir": self.manual_dir, "download": self.download}
