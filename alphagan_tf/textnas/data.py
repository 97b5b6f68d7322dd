"""Stanford Sentiment Treebank: tree parsing, labels, vocabulary, batches.

The treebank ships as PTB-style trees, one sentence a line, every node labelled
0..4 (very negative .. very positive)::

    (3 (2 (2 The) (2 Rock)) (4 (3 (2 is) ...

- Every labelled subtree is a phrase. Training uses all phrases of the train
  trees (the usual SST practice); dev and test use the root sentences only.
- Tokenisation: the tree leaves, lower-cased (`str.lower`). The exported model
  does the same in its graph (`tf.strings.lower` + whitespace split).
- Identical phrases (same lower-cased tokens) occur many times across trees
  (every "the" is a one-word subtree); `dedup_phrases=True` keeps the first
  occurrence of each, which is the phrase set the treebank's phrase dictionary
  defines. This is our choice, documented; it halves an epoch's cost.
- SST-5: the five labels. SST-2: label 2 (neutral) is dropped, 0,1 -> 0 and
  3,4 -> 1, for phrases and sentences alike.
- Vocabulary from the train trees: index 0 = padding, 1 = unknown, then words
  by decreasing frequency (ties alphabetical).

This module needs numpy only; batches are numpy arrays fed to compiled steps.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Iterator, Sequence

import numpy as np

PAD_ID = 0
UNK_ID = 1
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"

TASKS = {"sst2": 2, "sst5": 5}


@dataclasses.dataclass(frozen=True)
class Tree:
    """A parsed treebank tree: its root label and every node's (label, tokens)."""

    label: int
    tokens: tuple[str, ...]
    phrases: tuple[tuple[int, tuple[str, ...]], ...]  # every labelled subtree, root first


def parse_tree(line: str) -> Tree:
    """Parses one PTB-style line `(label child child)` / `(label word)`.

    Args:
        line: one tree; words are the tokens between a label and `)`.

    Returns:
        the root label, the leaves (original case) and every subtree.
    """
    text = line.strip()
    pos = 0
    n = len(text)
    phrases: list[tuple[int, tuple[str, ...]]] = []

    def skip_spaces():
        nonlocal pos
        while pos < n and text[pos] == " ":
            pos += 1

    def node() -> tuple[str, ...]:
        nonlocal pos
        if pos >= n or text[pos] != "(":
            raise ValueError(f"expected '(' at {pos} in tree {line.strip()[:80]!r}")
        pos += 1
        start = pos
        while pos < n and text[pos] not in " ()":
            pos += 1
        label_text = text[start:pos]
        if not label_text.isdigit() or not 0 <= int(label_text) <= 4:
            raise ValueError(
                f"expected a label 0..4 at {start} in tree {line.strip()[:80]!r}. "
                f"Received: {label_text!r}"
            )
        skip_spaces()
        slot = len(phrases)
        phrases.append((int(label_text), ()))
        tokens: tuple[str, ...]
        if pos < n and text[pos] == "(":
            tokens = ()
            while pos < n and text[pos] == "(":
                tokens += node()
                skip_spaces()
        else:
            start = pos
            while pos < n and text[pos] != ")":
                pos += 1
            word = text[start:pos].strip()
            if not word:
                raise ValueError(f"empty leaf at {start} in tree {line.strip()[:80]!r}")
            tokens = (word,)
        if pos >= n or text[pos] != ")":
            raise ValueError(f"expected ')' at {pos} in tree {line.strip()[:80]!r}")
        pos += 1
        phrases[slot] = (phrases[slot][0], tokens)
        return tokens

    tokens = node()
    skip_spaces()
    if pos != n:
        raise ValueError(f"trailing text at {pos} in tree {line.strip()[:80]!r}")
    return Tree(label=phrases[0][0], tokens=tokens, phrases=tuple(phrases))


def read_trees(path: str | os.PathLike) -> list[Tree]:
    """All trees of one treebank file."""
    with open(path, encoding="utf-8") as f:
        return [parse_tree(line) for line in f if line.strip()]


def map_label(label: int, task: str) -> int | None:
    """The task's class for a 0..4 treebank label, or None when the task drops it."""
    if task == "sst5":
        return label
    if task == "sst2":
        return None if label == 2 else int(label >= 3)
    raise ValueError(f"task must be one of {sorted(TASKS)}. Received: {task!r}")


def tokenize(tokens: Sequence[str]) -> tuple[str, ...]:
    return tuple(t.lower() for t in tokens)


@dataclasses.dataclass(frozen=True)
class Examples:
    """Token sequences with their class labels."""

    tokens: tuple[tuple[str, ...], ...]
    labels: np.ndarray  # int32 [N]

    def __len__(self) -> int:
        return len(self.tokens)


def phrase_examples(trees: Sequence[Tree], task: str, dedup: bool = True) -> Examples:
    """Every labelled subtree of `trees` the task keeps (lower-cased)."""
    seen = set()
    tokens, labels = [], []
    for tree in trees:
        for label, words in tree.phrases:
            y = map_label(label, task)
            if y is None:
                continue
            words = tokenize(words)
            if dedup:
                if words in seen:
                    continue
                seen.add(words)
            tokens.append(words)
            labels.append(y)
    return Examples(tokens=tuple(tokens), labels=np.asarray(labels, dtype=np.int32))


def sentence_examples(trees: Sequence[Tree], task: str) -> Examples:
    """The root sentences of `trees` the task keeps (lower-cased)."""
    tokens, labels = [], []
    for tree in trees:
        y = map_label(tree.label, task)
        if y is None:
            continue
        tokens.append(tokenize(tree.tokens))
        labels.append(y)
    return Examples(tokens=tuple(tokens), labels=np.asarray(labels, dtype=np.int32))


class Vocabulary:
    """Token <-> id; id 0 is padding, id 1 unknown."""

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if words[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise ValueError(
                f"a vocabulary starts with {PAD_TOKEN!r}, {UNK_TOKEN!r}. Received: {words[:2]}"
            )
        if len(set(words)) != len(words):
            raise ValueError("vocabulary words must be unique.")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def from_examples(cls, examples: Sequence[Sequence[str]], min_count: int = 1):
        """Words of `examples` with at least `min_count` occurrences."""
        counts = collections.Counter(t for tokens in examples for t in tokens)
        words = sorted((w for w, c in counts.items() if c >= min_count),
                       key=lambda w: (-counts[w], w))
        words = [w for w in words if w not in (PAD_TOKEN, UNK_TOKEN)]
        return cls([PAD_TOKEN, UNK_TOKEN, *words])

    def encode(self, tokens: Sequence[str], max_length: int) -> list[int]:
        return [self.index.get(t, UNK_ID) for t in tokens[:max_length]]

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.words) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        with open(path, encoding="utf-8") as f:
            return cls([line.rstrip("\n") for line in f if line.rstrip("\n")])


@dataclasses.dataclass(frozen=True)
class EncodedSet:
    """Id sequences (ragged, already truncated) and labels."""

    ids: tuple[np.ndarray, ...]  # int32 [length_i], length_i >= 1
    labels: np.ndarray  # int32 [N]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.asarray([len(x) for x in self.ids], dtype=np.int32)

    def subset(self, indices: Sequence[int]) -> "EncodedSet":
        return EncodedSet(ids=tuple(self.ids[i] for i in indices), labels=self.labels[list(indices)])


def encode(examples: Examples, vocab: Vocabulary, max_length: int) -> EncodedSet:
    """Maps tokens to ids, truncated to `max_length`; empty examples are dropped."""
    ids, keep = [], []
    for i, tokens in enumerate(examples.tokens):
        seq = vocab.encode(tokens, max_length)
        if seq:
            ids.append(np.asarray(seq, dtype=np.int32))
            keep.append(i)
    return EncodedSet(ids=tuple(ids), labels=examples.labels[keep])


def pad_batch(sequences: Sequence[np.ndarray], length: int | None = None) -> np.ndarray:
    """Right-pads id sequences with PAD_ID: int32 [batch, max(len) or length]."""
    length = length or max(1, max(len(s) for s in sequences))
    out = np.full((len(sequences), length), PAD_ID, dtype=np.int32)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = seq[:length]
    return out


class BucketBatcher:
    """Length-bucketed batches whose order is a pure function of (seed, epoch).

    Each epoch: shuffle all examples, cut the permutation into pools of
    `pool_batches` batches, sort each pool by length, cut it into batches,
    shuffle the batch order. Batches are padded to their own longest sequence,
    so short phrases cost little. Being a pure function of (seed, epoch), a run
    can resume at any step by recomputing the epoch and skipping batches.
    """

    def __init__(self, data: EncodedSet, batch_size: int, seed: int,
                 pool_batches: int = 50, drop_remainder: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
        if len(data) == 0:
            raise ValueError("cannot batch an empty set.")
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.pool_batches = pool_batches
        self.drop_remainder = drop_remainder
        self._lengths = data.lengths

    def __len__(self) -> int:
        n = len(self.data)
        full = n // self.batch_size
        return full if self.drop_remainder or n % self.batch_size == 0 else full + 1

    def epoch_indices(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(len(self.data))
        pool = self.batch_size * self.pool_batches
        batches = []
        for start in range(0, len(perm), pool):
            chunk = perm[start : start + pool]
            chunk = chunk[np.argsort(self._lengths[chunk], kind="stable")]
            for b in range(0, len(chunk), self.batch_size):
                batches.append(chunk[b : b + self.batch_size])
        if self.drop_remainder:
            batches = [b for b in batches if len(b) == self.batch_size]
        order = rng.permutation(len(batches))
        return [batches[i] for i in order][: len(self)]

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids int32 [B, T], labels int32 [B])."""
        return pad_batch([self.data.ids[i] for i in indices]), self.data.labels[indices]

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The batches of `epoch`, from batch `start` on."""
        for indices in self.epoch_indices(epoch)[start:]:
            yield self.batch(indices)

    def batch_at(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The `step`-th batch of the infinite sequence epoch 0, epoch 1, ..."""
        epoch, offset = divmod(step, len(self))
        return self.batch(self.epoch_indices(epoch)[offset])


def eval_batches(data: EncodedSet, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed batches sorted by length (for evaluation; order does not matter)."""
    order = np.argsort(data.lengths, kind="stable")
    return [
        (pad_batch([data.ids[i] for i in order[s : s + batch_size]]),
         data.labels[order[s : s + batch_size]])
        for s in range(0, len(order), batch_size)
    ]


@dataclasses.dataclass(frozen=True)
class SSTData:
    """Everything one run needs, encoded."""

    task: str
    vocab: Vocabulary
    train_phrases: EncodedSet
    dev_sentences: EncodedSet
    test_sentences: EncodedSet

    @property
    def num_classes(self) -> int:
        return TASKS[self.task]


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}. Received: {task!r}")


def load_trees(sst_dir: str | os.PathLike, split: str) -> list[Tree]:
    path = os.path.join(os.fspath(sst_dir), f"{split}.txt")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"SST split {split!r} not found: expected {path} (PTB-style trees)."
        )
    return read_trees(path)


def load_sst(sst_dir: str | os.PathLike, task: str, max_length: int = 64,
             dedup_phrases: bool = True, max_train_trees: int | None = None) -> SSTData:
    """Train phrases, dev and test sentences of SST-2 or SST-5, encoded.

    Args:
        sst_dir: folder with train.txt, dev.txt, test.txt.
        task: "sst2" or "sst5".
        max_length: sequences are truncated to this many tokens.
        dedup_phrases: keep each distinct train phrase once.
        max_train_trees: use only the first N train trees (tests, demos).
    """
    check_task(task)
    train_trees = load_trees(sst_dir, "train")[:max_train_trees]
    phrases = phrase_examples(train_trees, task, dedup=dedup_phrases)
    vocab = Vocabulary.from_examples(tokenize(t.tokens) for t in train_trees)
    return SSTData(
        task=task,
        vocab=vocab,
        train_phrases=encode(phrases, vocab, max_length),
        dev_sentences=encode(sentence_examples(load_trees(sst_dir, "dev"), task), vocab, max_length),
        test_sentences=encode(sentence_examples(load_trees(sst_dir, "test"), task), vocab, max_length),
    )


@dataclasses.dataclass(frozen=True)
class SearchSplit:
    """Train trees split for the search: weights on one part, architecture on the other."""

    task: str
    vocab: Vocabulary
    weight_phrases: EncodedSet
    arch_phrases: EncodedSet
    arch_sentences: EncodedSet


def load_search_split(sst_dir: str | os.PathLike, task: str, held_out_fraction: float = 0.1,
                      seed: int = 0, max_length: int = 64, dedup_phrases: bool = True,
                      max_train_trees: int | None = None) -> SearchSplit:
    """Splits the TRAIN trees (never dev/test) into weight and architecture parts.

    A seeded permutation of the train trees puts `held_out_fraction` of them in
    the architecture part; weights train on the phrases of the other trees, the
    architecture on the phrases of the held-out trees. The vocabulary is built
    from all train trees (they are all train data).
    """
    check_task(task)
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in (0, 1). Received: {held_out_fraction}")
    trees = load_trees(sst_dir, "train")[:max_train_trees]
    vocab = Vocabulary.from_examples(tokenize(t.tokens) for t in trees)
    perm = np.random.default_rng(seed).permutation(len(trees))
    n_held = max(1, int(round(held_out_fraction * len(trees))))
    held = [trees[i] for i in sorted(perm[:n_held])]
    kept = [trees[i] for i in sorted(perm[n_held:])]
    return SearchSplit(
        task=task,
        vocab=vocab,
        weight_phrases=encode(phrase_examples(kept, task, dedup_phrases), vocab, max_length),
        arch_phrases=encode(phrase_examples(held, task, dedup_phrases), vocab, max_length),
        arch_sentences=encode(sentence_examples(held, task), vocab, max_length),
    )


def load_glove(path: str | os.PathLike, vocab: Vocabulary, dim: int, seed: int = 0,
               scale: float = 0.1) -> tuple[np.ndarray, int]:
    """An embedding matrix from a GloVe-format text file (`word v1 v2 ...` a line).

    Args:
        path: the text file.
        vocab: rows follow its ids.
        dim: the expected vector size.
        seed: for the unknown words' vectors.
        scale: unknown words get U(-scale, scale) vectors.

    Returns:
        (float32 [len(vocab), dim] with the padding row zero, number of words found).
    """
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-scale, scale, size=(len(vocab), dim)).astype(np.float32)
    matrix[PAD_ID] = 0.0
    found = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                continue
            word, values = parts[0], parts[1:]
            if len(values) != dim:
                if line_no == 1 and len(values) == 1:
                    continue  # word2vec-style header "count dim"
                raise ValueError(
                    f"{os.fspath(path)}:{line_no}: expected {dim} values (embedding_dim). "
                    f"Received: {len(values)}"
                )
            idx = vocab.index.get(word)
            if idx is None or idx in (PAD_ID, UNK_ID):
                continue
            matrix[idx] = np.asarray(values, dtype=np.float32)
            found += 1
    return matrix, found
