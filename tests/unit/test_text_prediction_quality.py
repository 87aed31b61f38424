"""Perplexity (token and word level) and last-word accuracy (`nasflow.text_prediction.quality`)."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch
import torch.nn.functional as F

from nasflow.core.errors import ConfigError, DataError
from nasflow.lts.model import GPTDecoder
from nasflow.space.gpt import GPTArch
from nasflow.text_prediction.corpus import TextPredictionData, build_data
from nasflow.text_prediction.quality import last_word_accuracy, perplexity

WORDS = ("ka", "lon", "mira", "tu", "sel", "vo")
ARCH = GPTArch.uniform(1, 16, 32, 2)
# Held-out sentences of the finetune corpus: last words known, one too short for the default.
HELDOUT = [
    "ka lon tu ka mira",
    "tu tu ka lon ka",
    "ka mira",
    "lon lon sel lon vo mira",
    "mira tu ka lon tu",
    "vo ka sel tu lon zorvik",
]


def _lines(count: int, seed: int) -> str:
    rng = random.Random(seed)
    rows = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9))) for _ in range(count)]
    return "".join(row + "\n" for row in rows)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TextPredictionData:
    root = tmp_path_factory.mktemp("quality")
    ptb, multi30k = root / "ptb", root / "multi30k"
    ptb.mkdir()
    multi30k.mkdir()
    (ptb / "ptb.train.txt").write_text(_lines(300, 1))
    (ptb / "ptb.valid.txt").write_text(_lines(30, 2))
    (multi30k / "train.en").write_text(_lines(100, 3))
    (multi30k / "val.en").write_text(_lines(10, 4))
    (multi30k / "test_2016_flickr.en").write_text("".join(s + "\n" for s in HELDOUT))
    return build_data(ptb, multi30k, root / "data", 300)


class Uniform(GPTDecoder):
    """Every logit zero: each token costs log(vocab) nats."""

    def forward(self, tokens, past=None):  # type: ignore[no-untyped-def, override]
        _, present = super().forward(tokens, past)
        return torch.zeros(*tokens.shape, self.vocab_size), present


class Scripted(GPTDecoder):
    """Emits `table[last token]` at every position (a known continuation), with a real cache."""

    def __init__(self, vocab_size: int, table: torch.Tensor) -> None:
        super().__init__(ARCH, vocab_size, 64, dropout=0.0)
        self.table = table

    def forward(self, tokens, past=None):  # type: ignore[no-untyped-def, override]
        _, present = super().forward(tokens, past)
        return 10.0 * F.one_hot(self.table[tokens], self.vocab_size).float(), present


def scripted(data: TextPredictionData, word: str, end: str) -> Scripted:
    """A model that answers every context with `word`'s pieces, then EOS or a new word."""
    pieces = data.processor.encode(word)
    table = torch.full((data.vocab_size,), pieces[0], dtype=torch.long)
    for a, b in itertools.pairwise(pieces):
        table[a] = b
    table[pieces[-1]] = data.eos_id if end == "eos" else data.processor.encode("tu")[0]
    return Scripted(data.vocab_size, table)


# ---- perplexity ----------------------------------------------------------------------------------
def test_uniform_logits_give_the_vocabulary_size_and_the_word_level_conversion(
    data: TextPredictionData,
) -> None:
    torch.manual_seed(0)
    model = Uniform(ARCH, data.vocab_size, 64)
    ids, vocab = data.ids("pretrain", "valid"), data.vocab_size
    result = perplexity(model, data, "pretrain", "valid", seq_len=16)
    assert result["tokens"] == ids.size  # every token, the first line's first included
    assert result["words"] == data.words("pretrain", "valid")
    assert result["lines"] == 30
    assert result["nll"] == pytest.approx(ids.size * math.log(vocab))
    assert result["token_ppl"] == pytest.approx(vocab)
    assert result["word_ppl"] == pytest.approx(vocab ** (ids.size / result["words"]))
    offsets, words = data.offsets("pretrain", "valid"), data.line_words("pretrain", "valid")
    capped = perplexity(model, data, "pretrain", "valid", 16, max_tokens=int(offsets[3]) + 2)
    assert (capped["lines"], capped["tokens"]) == (3, offsets[3])  # whole lines only
    assert capped["words"] == int(words[:3].sum()) + 3
    assert perplexity(model, data, "pretrain", "valid", 16, max_tokens=1)["lines"] == 1


def test_perplexity_needs_the_tokenizers_vocabulary(data: TextPredictionData) -> None:
    with pytest.raises(ConfigError, match="fewer than the tokenizer's 300 pieces"):
        perplexity(GPTDecoder(ARCH, 100, 64), data, "pretrain", "valid", 16)


# ---- last-word accuracy --------------------------------------------------------------------------
@pytest.mark.parametrize("end", ["eos", "new_word"])
def test_a_model_that_always_says_mira(data: TextPredictionData, end: str) -> None:
    assert len(data.processor.encode("mira")) == 1
    model = scripted(data, "mira", end)
    result = last_word_accuracy(model, data, "finetune", "test")
    assert (result["n"], result["correct"], result["skipped"]) == (5, 2, 1)
    assert result["accuracy"] == pytest.approx(0.4)
    assert result["examples"][0] == {
        "context": "ka lon tu ka",
        "target": "mira",
        "predicted": "mira",
        "correct": True,
    }
    assert [e["correct"] for e in result["examples"]] == [True, False, True, False, False]
    loose = last_word_accuracy(model, data, "finetune", "test", min_context_words=1)
    assert (loose["n"], loose["correct"]) == (6, 3)
    first_two = last_word_accuracy(model, data, "finetune", "test", max_sentences=2)
    assert (first_two["n"], first_two["accuracy"]) == (2, 0.5)
    one_by_one = last_word_accuracy(model, data, "finetune", "test", batch_size=1)
    assert one_by_one == result


def test_a_word_of_several_pieces_is_decoded_until_the_next_word(data: TextPredictionData) -> None:
    pieces = data.processor.encode("zorvik")  # "z" is not in the training text: byte fallback
    assert len(pieces) == len(set(pieces)) >= 3
    assert data.processor.id_to_piece(pieces[1]) == "<0x7A>"
    model = scripted(data, "zorvik", "new_word")
    result = last_word_accuracy(model, data, "finetune", "test")
    assert (result["n"], result["correct"]) == (5, 1)
    assert result["examples"][1]["predicted"] == "zorvik"
    cut = last_word_accuracy(model, data, "finetune", "test", max_new_tokens=len(pieces) - 1)
    assert cut["correct"] == 0 and cut["examples"][4]["predicted"] != "zorvik"


def test_a_real_model_is_deterministic(data: TextPredictionData) -> None:
    torch.manual_seed(3)
    model = GPTDecoder(ARCH, data.vocab_size, 64, dropout=0.5).train()
    first = last_word_accuracy(model, data, "pretrain", "valid", max_new_tokens=3)
    assert first == last_word_accuracy(model, data, "pretrain", "valid", max_new_tokens=3)
    assert model.training  # the mode is restored
    assert first["n"] + first["skipped"] == 30


def test_last_word_accuracy_errors(data: TextPredictionData) -> None:
    model = scripted(data, "mira", "eos")
    with pytest.raises(ConfigError, match=r"text_prediction\.quality\.max_new_tokens"):
        last_word_accuracy(model, data, "finetune", "test", max_new_tokens=0)
    with pytest.raises(DataError, match="at least 21 words"):
        last_word_accuracy(model, data, "finetune", "test", min_context_words=20)
    with pytest.raises(DataError, match="sentences are stored for valid and test"):
        last_word_accuracy(model, data, "finetune", "train")
