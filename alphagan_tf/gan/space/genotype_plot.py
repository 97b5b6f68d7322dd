"""A picture of a genotype: the three cells with their chosen ops and the skips.

Pure matplotlib (Agg, through `matplotlib.figure.Figure`: no pyplot state), no
TensorFlow. Layout, left to right: z -> Dense stem -> cell 1 -> cell 2 -> cell 3
-> BN/ReLU/conv3x3/tanh head -> image. In each cell the input x feeds node 1 and
node 3 through the up edges (blue), node1 -> node2 -> node4 and node3 -> node4
are the normal edges (black); the cross-cell skip edges (orange) leave a cell's
node 1 above the cells and enter the receiving cell's node 4. Every edge is
labelled with its chosen op; nodes carry their spatial size.
"""

from __future__ import annotations

import os

from alphagan_tf.gan.space.genotypes import SKIP_2_SCALES, SKIP_3_SCALES, Genotype

_UP_COLOR = "#1f5fa8"
_NORMAL_COLOR = "#222222"
_SKIP_COLOR = "#d9730d"
_CELL_WIDTH = 4.7
_STEM_WIDTH = 2.6
# Node positions inside a cell, relative to its input node.
_NODE_POS = {"x": (0.0, 0.0), 1: (1.3, 1.1), 3: (1.3, -1.1), 2: (3.2, 1.1), 4: (_CELL_WIDTH, 0.0)}


def draw_genotype(
    genotype: Genotype,
    path: str | os.PathLike,
    title: str | None = None,
    bottom_width: int = 4,
    gf: int = 256,
    dpi: int = 120,
) -> str:
    """Draws `genotype` to a PNG file.

    Args:
        genotype: the architecture to draw.
        path: output PNG path (parent directories are created).
        title: figure title (default: a summary line).
        bottom_width: side of the first feature map, for the size labels.
        gf: channels, for the labels.
        dpi: resolution (the figure is 19 x 6.2 inches).

    Returns:
        The path written.
    """
    # matplotlib: loaded only to draw
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    fig = Figure(figsize=(19, 6.2), dpi=dpi)
    ax = fig.add_axes((0.01, 0.02, 0.98, 0.86))
    ax.set_xlim(-0.6, _STEM_WIDTH + 3 * _CELL_WIDTH + 3.2)
    ax.set_ylim(-2.1, 4.2)
    ax.axis("off")

    def node(xy, text, size_text=None, color="white"):
        ax.add_patch(
            FancyBboxPatch(
                (xy[0] - 0.2, xy[1] - 0.2), 0.4, 0.4,
                boxstyle="circle,pad=0.02", facecolor=color, edgecolor="black", lw=1.3, zorder=3,
            )
        )
        ax.text(*xy, text, ha="center", va="center", fontsize=10, fontweight="bold", zorder=4)
        if size_text:
            ax.text(xy[0], xy[1] - 0.38, size_text, ha="center", va="top", fontsize=8,
                    color="#555555", zorder=4)

    def box(x, y, text, width):
        ax.add_patch(
            FancyBboxPatch(
                (x - width / 2, y - 0.3), width, 0.6, boxstyle="round,pad=0.05",
                facecolor="#eeeeee", edgecolor="#555555", zorder=2,
            )
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=9, zorder=4)

    def edge(a, b, label, color, label_at=0.5, style="-"):
        ax.annotate(
            "", xy=b, xytext=a, zorder=1,
            arrowprops=dict(arrowstyle="-|>", color=color, lw=1.6, linestyle=style,
                            shrinkA=13, shrinkB=13, mutation_scale=14),
        )
        if label:
            lx = a[0] + (b[0] - a[0]) * label_at
            ly = a[1] + (b[1] - a[1]) * label_at
            ax.text(lx, ly, label, ha="center", va="center", fontsize=9, color=color, zorder=5,
                    bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor=color, lw=0.8))

    side = lambda k: f"{bottom_width * 2 ** k}x{bottom_width * 2 ** k}"  # noqa: E731

    # Stem.
    node((-0.2, 0.0), "z", None, "#f6f6f6")
    box(1.1, 0.0, f"Dense\n-> {side(0)}x{gf}", 1.5)
    ax.annotate("", xy=(0.33, 0.0), xytext=(0.0, 0.0),
                arrowprops=dict(arrowstyle="-|>", color="black", lw=1.3))
    ax.annotate("", xy=(_STEM_WIDTH - 0.2, 0.0), xytext=(1.9, 0.0),
                arrowprops=dict(arrowstyle="-|>", color="black", lw=1.3))

    bases = [_STEM_WIDTH + k * _CELL_WIDTH for k in range(3)]
    pos = lambda k, n: (bases[k] + _NODE_POS[n][0], _NODE_POS[n][1])  # noqa: E731
    node(pos(0, "x"), "x", side(0), "#f6f6f6")
    for k, cell in enumerate(genotype.cells):
        base = bases[k]
        ax.add_patch(
            FancyBboxPatch(
                (base + 0.35, -1.85), _CELL_WIDTH - 0.7, 3.35, boxstyle="round,pad=0.05",
                facecolor="#f4f8fc", edgecolor="#9bb3cc", lw=1.0, linestyle="--", zorder=0,
            )
        )
        ax.text(base + _CELL_WIDTH / 2, -1.75, f"cell {k + 1}: {side(k)} -> {side(k + 1)}",
                ha="center", va="bottom", fontsize=10, fontweight="bold", color="#36587a")
        for n in (1, 2, 3, 4):
            node(pos(k, n), str(n), side(k + 1))
        edge(pos(k, "x"), pos(k, 1), f"{cell.up[0]} x2", _UP_COLOR)
        edge(pos(k, "x"), pos(k, 3), f"{cell.up[1]} x2", _UP_COLOR)
        edge(pos(k, 1), pos(k, 2), cell.normal[0], _NORMAL_COLOR)
        edge(pos(k, 2), pos(k, 4), cell.normal[1], _NORMAL_COLOR, label_at=0.6)
        edge(pos(k, 3), pos(k, 4), cell.normal[2], _NORMAL_COLOR)

    # Skips: (from cell, to cell, op, scale, height of the horizontal run, x offset at the end).
    skips = [
        (0, 1, genotype.skip_2[0], SKIP_2_SCALES[0], "skip_2", 2.2, 0.0),
        (0, 2, genotype.skip_3[0], SKIP_3_SCALES[0], "skip_3[0]", 3.5, -0.1),
        (1, 2, genotype.skip_3[1], SKIP_3_SCALES[1], "skip_3[1]", 2.85, 0.1),
    ]
    for src, dst, op, scale, name, height, dx in skips:
        x0, y0 = pos(src, 1)
        x1, y1 = pos(dst, 4)
        x1 += dx
        ax.plot([x0, x0, x1], [y0 + 0.22, height, height], color=_SKIP_COLOR, lw=1.6, zorder=1)
        ax.annotate("", xy=(x1, y1 + 0.22), xytext=(x1, height), zorder=1,
                    arrowprops=dict(arrowstyle="-|>", color=_SKIP_COLOR, lw=1.6, shrinkA=0,
                                    shrinkB=0, mutation_scale=14))
        ax.text((x0 + x1) / 2, height, f"{name}: {op} x{scale}", ha="center", va="center",
                fontsize=9, color=_SKIP_COLOR, zorder=5,
                bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor=_SKIP_COLOR, lw=0.8))

    # Head.
    out_x = bases[2] + _CELL_WIDTH
    box(out_x + 1.35, 0.0, "BN, ReLU\nconv3x3 -> 3\ntanh", 1.5)
    ax.annotate("", xy=(out_x + 0.55, 0.0), xytext=(out_x + 0.22, 0.0),
                arrowprops=dict(arrowstyle="-|>", color="black", lw=1.3))
    ax.annotate("", xy=(out_x + 2.45, 0.0), xytext=(out_x + 2.15, 0.0),
                arrowprops=dict(arrowstyle="-|>", color="black", lw=1.3))
    ax.text(out_x + 2.55, 0.0, f"image\n{side(3)}x3", ha="left", va="center", fontsize=9)

    # Legend.
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=_UP_COLOR, lw=2, label="up edge (x2)"),
        Line2D([], [], color=_NORMAL_COLOR, lw=2, label="normal edge"),
        Line2D([], [], color=_SKIP_COLOR, lw=2, label="cross-cell skip (summed into node 4)"),
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=9, frameon=False)
    fig.suptitle(
        title or "Generator architecture: node4 = normal[1](node2) + normal[2](node3) + skips",
        fontsize=13,
    )
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png")
    return path
