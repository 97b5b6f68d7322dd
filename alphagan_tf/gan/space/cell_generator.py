"""The generator's wiring, shared by the supernet and the fixed generator.

    z -> GeneratorStem -> cell1 -> cell2 (+ cell1's node1) -> cell3 (+ cell1's, cell2's node1)
      -> GeneratorHead -> images

`CellGenerator` holds the sizes, the stem, the three cells (which a subclass
builds: `SearchCell`s in `search_generator.SearchGenerator`, `FixedCell`s in
`generator.Generator`) and the head, and runs them; `edge_layers()` lists the
layer on every edge in `genotypes.EDGE_NAMES` order (mixed ops in the supernet).
"""

from __future__ import annotations

from typing import Sequence

import keras

from alphagan_tf.gan.space.cells import GeneratorHead, GeneratorStem
from alphagan_tf.nas.tracking import track_layers


class CellGenerator(keras.Model):
    """Stem, three cells and head (module docstring); subclasses pass the cells.

    Args:
        gf: channels of every cell node.
        latent_dim: size of z.
        bottom_width: side of the first feature map; images are 8x larger.
    """

    def __init__(self, gf: int, latent_dim: int, bottom_width: int, **kwargs):
        super().__init__(**kwargs)
        self.gf = int(gf)
        self.latent_dim = int(latent_dim)
        self.bottom_width = int(bottom_width)
        self.stem = GeneratorStem(self.gf, self.bottom_width, name="stem")

    def _set_cells(self, cells: Sequence[keras.layers.Layer], head: GeneratorHead) -> None:
        """Called by the subclass's __init__ once: the cells and head, then builds the model."""
        # Lists of layers are invisible to tf.train.Checkpoint: see nas/tracking.py.
        self.gen_cells = track_layers(self, "cell", cells)
        self.head = head
        self.build((None, self.latent_dim))

    def build(self, input_shape):
        self.stem.build(input_shape)
        shape = self.stem.compute_output_shape(tuple(input_shape))
        for cell in self.gen_cells:
            cell.build(shape)
            shape = cell.compute_output_shape(shape)[0]
        self.head.build(shape)

    def call(self, inputs, training=None, architecture=None):
        x = self.stem(inputs)
        cell1, cell2, cell3 = self.gen_cells
        choices1, choices2, choices3 = self._cell_choices(architecture)
        x, skip1 = cell1(x, training=training, choices=choices1)
        x, skip2 = cell2(x, skip_inputs=[skip1], training=training, choices=choices2)
        x, _ = cell3(x, skip_inputs=[skip1, skip2], training=training, choices=choices3)
        return self.head(x, training=training)

    def _cell_choices(self, architecture) -> list:
        """Per cell: None, or its slice of `architecture` (own edges, then its skip edges).

        `architecture` lists one op index per edge in `edge_layers()` order: every
        cell's own edges first, then the skip edges of every cell.
        """
        if architecture is None:
            return [None] * len(self.gen_cells)
        own = [len(cell.cell_edges) for cell in self.gen_cells]
        skips = [len(cell.skip_edges) for cell in self.gen_cells]
        choices, own_start, skip_start = [], 0, sum(own)
        for n_own, n_skip in zip(own, skips):
            choices.append(keras.ops.concatenate([
                architecture[own_start:own_start + n_own],
                architecture[skip_start:skip_start + n_skip],
            ]))
            own_start, skip_start = own_start + n_own, skip_start + n_skip
        return choices

    def compute_output_shape(self, input_shape):
        side = 8 * self.bottom_width
        return (input_shape[0], side, side, 3)

    def edge_layers(self) -> list[keras.layers.Layer]:
        """The layer on every edge, in `genotypes.EDGE_NAMES` order."""
        cell1, cell2, cell3 = self.gen_cells
        return (
            cell1.cell_edges
            + cell2.cell_edges
            + cell3.cell_edges
            + cell2.skip_edges
            + cell3.skip_edges
        )

    def get_config(self):
        return {
            **super().get_config(),
            "gf": self.gf,
            "latent_dim": self.latent_dim,
            "bottom_width": self.bottom_width,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
