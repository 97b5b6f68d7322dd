"""TextNAS architectures as data: JSON round trip, validation, presets, sampling."""

import json
import math
import subprocess
import sys

import pytest

from alphagan_tf.textnas.space import architecture as A


def _example():
    return A.TextArchitecture(layers=(
        A.LayerChoice("conv_3", -1, ()),
        A.LayerChoice("bi_gru", -1, (0,)),
        A.LayerChoice("max_pool_3", 0, (0, 1)),
    ))


def test_json_round_trip(tmp_path):
    arch = _example()
    assert A.TextArchitecture.from_json(arch.to_json()) == arch
    path = tmp_path / "architecture.json"
    arch.save(path)
    assert A.TextArchitecture.load(path) == arch
    assert A.load_architecture(str(path)) == arch
    data = json.loads(path.read_text())
    assert data["format"] == "textnas_architecture"
    assert data["layers"][2] == {"op": "max_pool_3", "input": 0, "skips": [0, 1]}


@pytest.mark.parametrize(
    "layers, message",
    [
        ([{"op": "conv_9", "input": -1, "skips": []}], r"layers\[0\]\.op must be one of"),
        ([{"op": "conv_1", "input": 0, "skips": []}], r"layers\[0\]\.input must be an integer in \[-1\]"),
        ([{"op": "conv_1", "input": -1}, {"op": "conv_1", "input": 1}], r"layers\[1\]\.input"),
        ([{"op": "conv_1", "input": -1}, {"op": "conv_1", "input": "0"}], r"layers\[1\]\.input"),
        ([{"op": "conv_1", "input": -1}, {"op": "conv_1", "input": 0, "skips": [1]}],
         r"layers\[1\]\.skips must hold earlier layer indices in \[0, 0\]"),
        ([{"op": "conv_1", "input": -1}, {"op": "conv_1", "input": -1},
          {"op": "conv_1", "input": 0, "skips": [1, 0]}], r"layers\[2\]\.skips must be sorted"),
        ([{"op": "conv_1", "input": -1, "skip": []}], r"layers\[0\] has unknown fields \['skip'\]"),
        ([{"input": -1}], r"layers\[0\]\.op is missing"),
        ([], "at least one layer"),
    ],
)
def test_validation_names_the_field(layers, message):
    with pytest.raises(ValueError, match=message):
        A.TextArchitecture.from_dict({"layers": layers})


def test_input_window_is_five_previous_outputs():
    assert A.input_candidates(0) == [-1]
    assert A.input_candidates(3) == [-1, 0, 1, 2]
    assert A.input_candidates(4) == [-1, 0, 1, 2, 3]
    assert A.input_candidates(10) == [5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match=r"layers\[10\]\.input must be an integer in \[5, 6, 7, 8, 9\]"):
        A.TextArchitecture(layers=tuple(
            A.LayerChoice("conv_1", max(-1, i - 6) if i == 10 else i - 1) for i in range(11)
        ))


def test_wrong_format_and_bad_json(tmp_path):
    with pytest.raises(ValueError, match="format must be 'textnas_architecture'"):
        A.TextArchitecture.from_dict({"format": "genotype", "layers": []})
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: architecture is not valid JSON"):
        A.TextArchitecture.load(path)


def test_paper_preset():
    arch = A.PRESETS["textnas_paper"]
    assert arch.num_layers == 24
    assert arch.ops[:4] == ("max_pool_3", "self_attention", "conv_7", "bi_gru")
    assert arch.ops[-1] == "conv_7"
    assert arch.ops.count("self_attention") == 4 and arch.ops.count("bi_gru") == 2
    # Our documented completion: chain of previous layers, no skips.
    assert [l.input for l in arch.layers] == list(range(-1, 23))
    assert all(l.skips == () for l in arch.layers)
    assert A.load_architecture("textnas_paper") is arch


def test_random_architecture_is_valid_and_seeded():
    a = A.load_architecture("random:3")
    assert a.num_layers == 24
    assert a == A.random_architecture(24, 3)
    assert a != A.random_architecture(24, 4)
    assert A.load_architecture("random:1:6").num_layers == 6
    # Skips kept with probability 0.5: 276 candidates over 24 layers.
    kept = sum(len(l.skips) for l in a.layers)
    assert 100 < kept < 176
    with pytest.raises(ValueError, match="random:<seed>"):
        A.load_architecture("random:x")
    with pytest.raises(ValueError, match="preset"):
        A.load_architecture("no_such_thing")


def test_space_size_matches_paper_order_of_magnitude():
    # The paper quotes about 1e119 architectures for 24 layers.
    assert 118 <= math.log10(A.space_size(24)) <= 121
    assert A.space_size(1) == len(A.OPS)


def test_architecture_module_does_not_import_tensorflow():
    code = ("import sys; import alphagan_tf.textnas.space.architecture; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cap_skips_keeps_the_largest_gates_sorted():
    gates = [0.9, 0.55, 0.8, 0.7, 0.8]
    assert A.cap_skips([0, 1, 2, 3, 4], gates, max_skips=0) == (0, 1, 2, 3, 4)
    assert A.cap_skips([4, 0, 2, 1], gates, max_skips=2) == (0, 2)  # 0.9, then the 0.8 tie -> 2
    assert A.cap_skips([4, 1, 3], gates, max_skips=2) == (3, 4)
    assert A.cap_skips([1], gates, max_skips=3) == (1,)
    with pytest.raises(ValueError, match="max_skips must be >= 0"):
        A.cap_skips([0], gates, max_skips=-1)


def _probabilities():
    """A 4-layer probabilities.json whose derivation the next test states by hand."""
    uniform_op = {name: 1.0 / len(A.OPS) for name in A.OPS}
    return [
        {"op": {**uniform_op, "bi_gru": 0.3}, "input": {"-1": 1.0}, "skips": {}},
        {"op": {**uniform_op, "conv_5": 0.2}, "input": {"-1": 0.4, "0": 0.6}, "skips": {"0": 0.51}},
        {"op": uniform_op, "input": {"-1": 0.5, "0": 0.2, "1": 0.3},  # ties: first op, oldest input
         "skips": {"0": 0.7, "1": 0.62}},
        {"op": {**uniform_op, "max_pool_3": 0.5}, "input": {"-1": 0.1, "0": 0.1, "1": 0.1, "2": 0.7},
         "skips": {"0": 0.49, "1": 0.9, "2": 0.8}},
    ]


def test_derive_architecture_from_probabilities():
    probabilities = _probabilities()
    arch = A.derive_architecture(probabilities)
    assert arch.ops == ("bi_gru", "conv_5", "conv_1", "max_pool_3")
    assert [layer.input for layer in arch.layers] == [-1, 0, -1, 2]
    assert [layer.skips for layer in arch.layers] == [(), (0,), (0, 1), (1, 2)]
    capped = A.derive_architecture(probabilities, max_skips=1)
    assert [layer.skips for layer in capped.layers] == [(), (0,), (0,), (1,)]
    assert capped.ops == arch.ops


def test_derive_cli_rederives_a_search_without_tensorflow(tmp_path):
    """`python -m alphagan_tf.textnas.derive`: the capped derivation, written; bad JSON named."""
    (tmp_path / "probabilities.json").write_text(json.dumps(_probabilities()))
    root = __file__.rsplit("/tests/", 1)[0]
    derive = [sys.executable, "-m", "alphagan_tf.textnas.derive", f"--workdir={tmp_path}"]
    done = subprocess.run([*derive, f"--derived_path={tmp_path / 'capped.json'}",
                           "--search_max_skips=1"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    capped = A.load_architecture(str(tmp_path / "capped.json"))
    assert capped.ops == ("bi_gru", "conv_5", "conv_1", "max_pool_3")
    assert [layer.skips for layer in capped.layers] == [(), (0,), (0,), (1,)]
    assert "4 skips" not in done.stdout and "3 skips" in done.stdout
    light = subprocess.run(
        [sys.executable, "-c", "import sys, alphagan_tf.textnas.derive; "
         "print('tensorflow' in sys.modules, 'keras' in sys.modules)"],
        cwd=root, capture_output=True, text=True)
    assert light.stdout.split() == ["False", "False"], light.stderr[-2000:]
    (tmp_path / "probabilities.json").write_text('[{"op": ')
    bad = subprocess.run([*derive, f"--derived_path={tmp_path / 'other.json'}"],
                         cwd=root, capture_output=True, text=True)
    assert bad.returncode != 0
    assert f"{tmp_path}/probabilities.json is not a search's probabilities.json" in bad.stderr
    assert not (tmp_path / "other.json").exists()
