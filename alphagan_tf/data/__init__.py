"""Image data: sources selected by a spec string and the tf.data pipelines.

    search_datasets(spec, ...)   the weight / architecture halves of the search
    training_dataset(spec, ...)  the whole training set, for retraining
    evaluation_dataset(spec, ...) one ordered pass, for metric statistics

Specs: "demo", "npz:/path/file.npz", "folder:/path", "cifar10", "stl10",
"tfds:NAME[:SPLIT]" (see `sources`). Importing this package imports TensorFlow
but not tfds.
"""

from alphagan_tf.data.pipeline import (
    SearchData,
    TrainingData,
    evaluation_dataset,
    scale_images,
    search_datasets,
    search_datasets_from_images,
    split_indices,
    training_dataset,
)
from alphagan_tf.data.sources import (
    ACCEPTED_SPECS,
    DatasetUnavailableError,
    describe,
    parse_source,
)

__all__ = [
    "ACCEPTED_SPECS",
    "DatasetUnavailableError",
    "SearchData",
    "TrainingData",
    "describe",
    "evaluation_dataset",
    "parse_source",
    "scale_images",
    "search_datasets",
    "search_datasets_from_images",
    "split_indices",
    "training_dataset",
]
