"""Genotypes: presets, JSON round trip, validation errors, derivation, space size, picture."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from alphagan_tf.gan.space import genotypes
from alphagan_tf.gan.space.genotypes import (
    EDGE_NAMES,
    EDGES,
    NORMAL_OPS,
    PRESETS,
    UP_OPS,
    CellGenotype,
    Genotype,
    GenotypeError,
    derive_genotype,
    genotype_from_ops,
    load_genotype,
    space_size,
)

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_presets_are_the_published_genotypes():
    l, s = PRESETS["alphaGAN_l"], PRESETS["alphaGAN_s"]
    assert [c.normal for c in l.cells] == [
        ("conv_5x5", "conv_5x5", "sep_conv_5x5"),
        ("conv_5x5", "conv_1x1", "conv_3x3"),
        ("conv_1x1", "conv_5x5", "sep_conv_3x3"),
    ]
    assert [c.up for c in l.cells] == [
        ("deconv", "bilinear"), ("deconv", "bilinear"), ("nearest", "bilinear")
    ]
    assert l.skip_2 == ("nearest",) and l.skip_3 == ("bilinear", "nearest")
    assert [c.normal for c in s.cells] == [
        ("conv_1x1", "sep_conv_3x3", "conv_1x1"),
        ("sep_conv_5x5", "sep_conv_3x3", "sep_conv_3x3"),
        ("sep_conv_5x5", "sep_conv_3x3", "sep_conv_3x3"),
    ]
    assert [c.up for c in s.cells] == [("bilinear", "deconv"), ("deconv", "deconv"), ("deconv", "nearest")]
    assert s.skip_2 == ("nearest",) and s.skip_3 == ("deconv", "bilinear")


def test_edge_order():
    assert len(EDGES) == 18
    assert EDGE_NAMES[:5] == (
        "cell1.up[0]", "cell1.up[1]", "cell1.normal[0]", "cell1.normal[1]", "cell1.normal[2]"
    )
    assert EDGE_NAMES[-3:] == ("skip_2[0]", "skip_3[0]", "skip_3[1]")
    assert [k for _, k in EDGES].count("normal") == 9
    ops = PRESETS["alphaGAN_l"].ops()
    assert ops[:5] == ("deconv", "bilinear", "conv_5x5", "conv_5x5", "sep_conv_5x5")
    assert ops[-3:] == ("nearest", "bilinear", "nearest")
    assert genotype_from_ops(ops) == PRESETS["alphaGAN_l"]


def test_space_size_is_18_to_the_9():
    assert space_size() == 18**9 == 198_359_290_368
    assert space_size(NORMAL_OPS[:2], UP_OPS[:1]) == 2**9
    assert space_size(NORMAL_OPS, UP_OPS[:2]) == 6**9 * 2**9


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip(name, tmp_path):
    genotype = PRESETS[name]
    assert Genotype.from_json(genotype.to_json()) == genotype
    data = json.loads(genotype.to_json())
    assert data["version"] == 1
    assert data["cells"][0]["normal"] == list(genotype.cells[0].normal)
    path = tmp_path / f"{name}.json"
    genotype.save(path)
    assert Genotype.load(path) == genotype
    assert load_genotype(str(path)) == genotype
    assert load_genotype(name) is genotype


def _bad_file(tmp_path, mutate):
    data = PRESETS["alphaGAN_l"].to_dict()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["cells"][1]["normal"].__setitem__(2, "conv_9x9"),
         "cells[1].normal[2]: unknown op 'conv_9x9'; expected one of ('conv_1x1'"),
        (lambda d: d["cells"][0]["normal"].__setitem__(0, "deconv"),
         "cells[0].normal[0]: unknown op 'deconv' ('deconv' is an up op; cells[0].normal is a normal edge)"),
        (lambda d: d["cells"][2]["up"].__setitem__(1, "sep_conv_3x3"),
         "cells[2].up[1]: unknown op 'sep_conv_3x3' ('sep_conv_3x3' is a normal op"),
        (lambda d: d["cells"][0]["up"].append("nearest"), "cells[0].up: expected 2 edge(s)"),
        (lambda d: d["cells"][1]["normal"].pop(), "cells[1].normal: expected 3 edge(s)"),
        (lambda d: d["skip_3"].pop(), "skip_3: expected 2 edge(s)"),
        (lambda d: d.__setitem__("skip_2", ["conv_1x1"]), "skip_2[0]: unknown op 'conv_1x1'"),
        (lambda d: d["cells"].pop(), "cells: expected 3 cells. Received 2."),
        (lambda d: d.pop("skip_2"), "genotype: missing key(s) ['skip_2']"),
        (lambda d: d.__setitem__("skip_4", []), "genotype: unknown key(s) ['skip_4']"),
        (lambda d: d["cells"][0].__setitem__("down", []), "cells[0]: unknown key(s) ['down']"),
        (lambda d: d.__setitem__("version", 2), "version: expected 1. Received: 2"),
        (lambda d: d["cells"][1].__setitem__("up", "deconv"), "cells[1].up: expected a list of 2 op names"),
    ],
)
def test_bad_genotype_files_are_rejected_naming_the_field(tmp_path, mutate, message):
    path = _bad_file(tmp_path, mutate)
    with pytest.raises(GenotypeError) as info:
        load_genotype(str(path))
    text = str(info.value)
    assert text.startswith(str(path) + ": ")
    assert message in text


def test_not_json_and_missing_files(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{cells: nope")
    with pytest.raises(GenotypeError, match="not valid JSON"):
        load_genotype(str(path))
    with pytest.raises(FileNotFoundError, match="preset name"):
        load_genotype("alphaGAN_xl")
    with pytest.raises(GenotypeError, match="cell.up: expected 2 edge"):
        CellGenotype(normal=("conv_1x1",) * 3, up=("deconv",))


def test_derive_genotype_is_argmax_per_edge():
    rng = np.random.default_rng(0)
    target = PRESETS["alphaGAN_s"]
    alphas = []
    for (_, kind), op in zip(EDGES, target.ops()):
        names = NORMAL_OPS if kind == "normal" else UP_OPS
        vector = rng.normal(size=len(names)) * 0.1
        vector[names.index(op)] = 1.0
        alphas.append(vector)
    assert derive_genotype(alphas) == target
    assert derive_genotype(dict(zip(EDGE_NAMES, alphas))) == target
    # Ties go to the first candidate.
    tied = derive_genotype([np.zeros(6 if k == "normal" else 3) for _, k in EDGES])
    assert tied.cells[0].normal == ("conv_1x1",) * 3 and tied.skip_3 == ("deconv", "deconv")


def test_derive_genotype_rejects_bad_shapes():
    with pytest.raises(GenotypeError, match="expected 18 vectors"):
        derive_genotype([np.zeros(6)] * 17)
    bad = [np.zeros(6 if k == "normal" else 3) for _, k in EDGES]
    bad[0] = np.zeros(6)
    with pytest.raises(GenotypeError, match=r"alphas\[cell1.up\[0\]\]: expected 3 entries"):
        derive_genotype(bad)
    with pytest.raises(GenotypeError, match="Missing"):
        derive_genotype({"cell1.up[0]": np.zeros(3)})


def test_genotypes_module_does_not_import_tensorflow():
    code = (
        "import sys, alphagan_tf.gan.space.genotypes, alphagan_tf.gan.space.genotype_plot; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_draw_genotype_writes_a_sensible_png(tmp_path):
    from PIL import Image

    from alphagan_tf.gan.space.genotype_plot import draw_genotype

    path = draw_genotype(PRESETS["alphaGAN_l"], tmp_path / "sub" / "arch.png", dpi=100)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (1900, 620)
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    # Mostly white background with a fair amount of drawing on it.
    dark = (pixels.mean(axis=-1) < 128).mean()
    assert 0.005 < dark < 0.2
    # The orange skip edges and blue up edges are drawn.
    orange = (np.abs(pixels - [217, 115, 13]).sum(-1) < 40).sum()
    blue = (np.abs(pixels - [31, 95, 168]).sum(-1) < 40).sum()
    assert orange > 500 and blue > 500


def test_cli_draws_and_prints(tmp_path):
    out = tmp_path / "arch.png"
    result = subprocess.run(
        [sys.executable, "-m", "alphagan_tf.genotype", "--genotype=alphaGAN_s", f"--out={out}", "--print"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    assert "198,359,290,368 architectures" in result.stdout
    assert "sep_conv_5x5, sep_conv_3x3, sep_conv_3x3" in result.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    bad = subprocess.run(
        [sys.executable, "-m", "alphagan_tf.genotype", "--genotype=nope", "--print"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert bad.returncode != 0
    assert "--genotype: Genotype must be a preset name" in bad.stderr
