"""The ENAS controller of the TextNAS space: an LSTM that samples an architecture.

TextNAS searched its space with ENAS (Pham et al., 2018): an LSTM controller
emits the architecture one decision at a time, each decision fed back as the
next input. Ours follows the settings of the TextNAS example in Microsoft NNI
(`examples/nas/legacy/textnas/search.py`, `EnasMutator`): one LSTM layer of 64
units, no tanh squashing or temperature on the logits, a skip target of 0.4.

One LSTM step per decision, after a first step on a learned start vector whose
output is the stem's anchor:

    layer i = 0 .. L-1:
      op:     logits = W_op h                 -> categorical over OPS;
              next input = embedding(op)
      input:  (i >= 1) score_j = v . tanh(W_a a_j + W_q h) over the anchors a_j
              of `input_candidates(i)` -> categorical; next input = the chosen anchor
      skips:  (i >= 1) the same attention form (own weights) over the anchors of
              layers 0 .. i-1 -> one Bernoulli(sigmoid(score_j)) each;
              next input = sum of the chosen anchors / (1 + their number)
      anchor of layer i = h after its last step.

Every decision uses one uniform number of `tf.random.stateless_uniform(seed)`
(inverse CDF), so a sample is a pure function of (weights, seed): the search
is deterministic under `--seed` and resumes exactly. `log_prob` replays given
decisions through the same steps (teacher forcing) and returns the same
quantities for them.

Returned with every sample: the log-probability of the whole sample (sum over
all decisions), its entropy (sum of every decision's entropy given the
previous decisions) and `skip_kl`, the sum over skip decisions of
KL(Bernoulli(p) || Bernoulli(skip_target)) (ENAS's skip penalty).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import keras
import tensorflow as tf

from alphagan_tf.textnas.space.architecture import OPS, input_candidates
from alphagan_tf.utils.typed_config import (
    TypedConfig,
    require,
    require_finite_positive,
    require_fraction,
    require_non_negative,
    require_positive,
)


@dataclasses.dataclass(frozen=True)
class ControllerConfig(TypedConfig):
    """The controller and its REINFORCE training (defaults: NNI's TextNAS example).

    Attributes:
        units: LSTM hidden size.
        learning_rate: Adam learning rate of the controller.
        entropy_weight: weight of the sample entropy added to the reward.
        baseline_decay: decay of the moving-average reward baseline.
        skip_target: the skip probability the skip penalty pulls toward.
        skip_weight: weight of the skip penalty (sum of KL to `skip_target`).
        clipnorm: global gradient-norm clip of the controller (0 = none).
    """

    units: int = 64
    learning_rate: float = 2e-3
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.99
    skip_target: float = 0.4
    skip_weight: float = 0.8
    clipnorm: float = 5.0

    def __post_init__(self):
        require_positive(self, "units")
        require_finite_positive(self, "learning_rate")
        require_non_negative(self, "entropy_weight", "skip_weight", "clipnorm")
        require_fraction(self, "baseline_decay", closed=False)
        target = self.skip_target
        require(isinstance(target, (int, float)) and 0 < target < 1, "skip_target", target,
                "must be in (0, 1)")


class ControllerSample(NamedTuple):
    """One architecture and its statistics under the controller.

    ops: int32 [L]; inputs: int32 [L] (-1 = stem); skips: int32 [L, L]
    (`encoding.py`); log_prob, entropy, skip_kl: float32 scalars.
    """

    ops: tf.Tensor
    inputs: tf.Tensor
    skips: tf.Tensor
    log_prob: tf.Tensor
    entropy: tf.Tensor
    skip_kl: tf.Tensor

    @property
    def architecture(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return self.ops, self.inputs, self.skips


def num_decisions(num_layers: int) -> int:
    """Uniform numbers one sample uses: L ops, L-1 inputs, L(L-1)/2 skips."""
    return num_layers + (num_layers - 1) + num_layers * (num_layers - 1) // 2


@keras.saving.register_keras_serializable(package="alphagan_tf")
class AttentionScores(keras.layers.Layer):
    """ENAS's pointer scores: v . tanh(anchors W_a + query W_q).

    Call args:
        anchors: float32 [n, units].
        query: float32 [1, units].

    Returns:
        float32 [n].
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape=None):
        self.anchor_kernel = self.add_weight(name="anchor_kernel", shape=(self.units, self.units),
                                             initializer="glorot_uniform")
        self.query_kernel = self.add_weight(name="query_kernel", shape=(self.units, self.units),
                                            initializer="glorot_uniform")
        self.v = self.add_weight(name="v", shape=(self.units, 1), initializer="glorot_uniform")
        self.built = True

    def call(self, anchors, query):
        hidden = tf.tanh(tf.matmul(anchors, self.anchor_kernel) + tf.matmul(query, self.query_kernel))
        return tf.squeeze(tf.matmul(hidden, self.v), -1)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _categorical(logits, uniform=None, forced=None):
    """(choice int32 [], log p(choice), entropy) of a categorical over `logits` [n]."""
    log_p = tf.nn.log_softmax(logits)
    if forced is None:
        cdf = tf.cumsum(tf.exp(log_p))
        choice = tf.minimum(tf.reduce_sum(tf.cast(cdf < uniform, tf.int32)), tf.size(logits) - 1)
    else:
        choice = tf.cast(forced, tf.int32)
    entropy = -tf.reduce_sum(tf.exp(log_p) * log_p)
    return choice, tf.gather(log_p, choice), entropy


def _bernoullis(logits, uniforms=None, forced=None, target: float = 0.5):
    """(choices int32 [n], sum log p, sum entropy, sum KL(p || target)) of Bernoulli(sigmoid(logits))."""
    p = tf.sigmoid(logits)
    log_p1, log_p0 = tf.math.log_sigmoid(logits), tf.math.log_sigmoid(-logits)
    if forced is None:
        choices = tf.cast(uniforms < p, tf.int32)
    else:
        choices = tf.cast(forced, tf.int32)
    b = tf.cast(choices, logits.dtype)
    log_prob = tf.reduce_sum(b * log_p1 + (1.0 - b) * log_p0)
    entropy = -tf.reduce_sum(p * log_p1 + (1.0 - p) * log_p0)
    kl = tf.reduce_sum(p * (log_p1 - tf.math.log(target))
                       + (1.0 - p) * (log_p0 - tf.math.log(1.0 - target)))
    return choices, log_prob, entropy, kl


@keras.saving.register_keras_serializable(package="alphagan_tf")
class TextNASController(keras.Model):
    """The LSTM controller over the TextNAS space of `num_layers` layers.

    Args:
        num_layers: L of the architectures it samples.
        units: LSTM hidden size (64 in NNI's TextNAS).
        skip_target: the target skip probability of `skip_kl`.
    """

    def __init__(self, num_layers: int, units: int = 64, skip_target: float = 0.4, **kwargs):
        super().__init__(**kwargs)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1. Received: {num_layers}")
        self.num_layers = int(num_layers)
        self.units = int(units)
        self.skip_target = float(skip_target)
        self.cell = keras.layers.LSTMCell(self.units, name="lstm")
        self.op_logits = keras.layers.Dense(len(OPS), use_bias=False, name="op_logits")
        self.op_embedding = keras.layers.Embedding(len(OPS), self.units, name="op_embedding")
        self.input_attention = AttentionScores(self.units, name="input_attention")
        self.skip_attention = AttentionScores(self.units, name="skip_attention")

    @classmethod
    def create(cls, num_layers: int, units: int = 64, skip_target: float = 0.4,
               **kwargs) -> "TextNASController":
        """Builds the controller (all weights exist on return)."""
        controller = cls(num_layers, units, skip_target, **kwargs)
        controller.build()
        return controller

    def build(self, input_shape=None):
        self.start = self.add_weight(name="start", shape=(1, self.units),
                                     initializer=keras.initializers.RandomNormal(stddev=0.1))
        self.cell.build((1, self.units))
        self.op_logits.build((1, self.units))
        self.op_embedding.build((1,))
        self.input_attention.build()
        self.skip_attention.build()
        self.built = True

    def call(self, seed):
        return self.sample(seed)

    def sample(self, seed) -> ControllerSample:
        """A sample drawn with `seed` (int [2], a stateless-random seed)."""
        uniforms = tf.random.stateless_uniform([num_decisions(self.num_layers)], seed=seed)
        return self._unroll(uniforms=uniforms)

    def log_prob(self, ops, inputs, skips) -> ControllerSample:
        """The given architecture (`encoding.py` arrays) replayed: its log_prob, entropy, skip_kl."""
        return self._unroll(forced=(tf.convert_to_tensor(ops), tf.convert_to_tensor(inputs),
                                    tf.convert_to_tensor(skips)))

    def _step(self, x, state):
        h, state = self.cell(x, state)
        return h, state

    def _unroll(self, uniforms=None, forced=None) -> ControllerSample:
        L = self.num_layers
        state = [tf.zeros((1, self.units)), tf.zeros((1, self.units))]
        h, state = self._step(tf.convert_to_tensor(self.start), state)
        anchors = [h]  # anchors[j + 1] = layer j, anchors[0] = the stem
        x = h
        offset = 0
        ops_out, inputs_out, skip_rows = [], [], []
        log_prob = entropy = skip_kl = tf.constant(0.0)

        def uniform(count=None):
            nonlocal offset
            if uniforms is None:
                return None
            if count is None:
                value = uniforms[offset]
                offset += 1
            else:
                value = uniforms[offset:offset + count]
                offset += count
            return value

        for i in range(L):
            h, state = self._step(x, state)
            op, lp, ent = _categorical(self.op_logits(h)[0], uniform(),
                                       None if forced is None else forced[0][i])
            log_prob, entropy = log_prob + lp, entropy + ent
            ops_out.append(op)
            x = self.op_embedding(op[None])
            if i == 0:
                inputs_out.append(tf.constant(-1, tf.int32))
                skip_rows.append(tf.zeros([L], tf.int32))
                anchors.append(h)
                continue
            candidates = input_candidates(i)
            h, state = self._step(x, state)
            pool = tf.concat(anchors[candidates[0] + 1:i + 1], axis=0)  # [n, units]
            position, lp, ent = _categorical(
                self.input_attention(pool, h), uniform(),
                None if forced is None else forced[1][i] - candidates[0])
            log_prob, entropy = log_prob + lp, entropy + ent
            inputs_out.append(position + candidates[0])
            x = tf.gather(pool, position)[None]

            h, state = self._step(x, state)
            earlier = tf.concat(anchors[1:i + 1], axis=0)  # [i, units]
            chosen, lp, ent, kl = _bernoullis(
                self.skip_attention(earlier, h), uniform(i),
                None if forced is None else forced[2][i, :i], self.skip_target)
            log_prob, entropy, skip_kl = log_prob + lp, entropy + ent, skip_kl + kl
            skip_rows.append(tf.pad(chosen, [[0, L - i]]))
            chosen_f = tf.cast(chosen, h.dtype)[None]
            x = tf.matmul(chosen_f, earlier) / (1.0 + tf.reduce_sum(chosen_f))
            anchors.append(h)
        return ControllerSample(tf.stack(ops_out), tf.stack(inputs_out), tf.stack(skip_rows),
                                log_prob, entropy, skip_kl)

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "units": self.units,
                "skip_target": self.skip_target}
