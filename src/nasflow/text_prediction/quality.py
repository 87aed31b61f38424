"""Quality of a decoder on the experiment's held-out text: perplexity and last-word accuracy.

- `perplexity`: the split's stream (preceded by one EOS, the first sentence's start, so every
  token of every line is scored once) through `nasflow.lts.lm_train.evaluate_nll`. Token-level
  perplexity is `exp(nll / tokens)`; word-level perplexity is `exp(nll / words)` with words
  counted as whitespace words plus one end of sentence per line (the PTB convention), so models
  with different tokenizers compare.
- `last_word_accuracy` (LAMBADA-style): for every held-out sentence with at least
  `min_context_words + 1` words, the context is EOS followed by the encoding of all words but the
  last; greedy decoding (with the key/value cache) runs until the word is complete: the next
  argmax piece starts a new word (SentencePiece's `▁` prefix) or is EOS, or `max_new_tokens`
  pieces were generated. A sentence counts as correct iff the first generated piece starts a new
  word and the decoded word equals the true last word exactly. Contexts of equal length are
  batched (no padding), so results do not depend on the batch size beyond float rounding, and
  repeated runs are identical.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from nasflow.core.checks import is_int
from nasflow.core.errors import ConfigError, DataError
from nasflow.lts.lm_train import evaluate_nll
from nasflow.lts.model import GPTDecoder
from nasflow.text_prediction.corpus import TextPredictionData

__all__ = ["last_word_accuracy", "perplexity"]

WORD_START = "\u2581"
EXAMPLES = 5
KEY = "text_prediction.quality"


def _exp(value: float) -> float:
    return math.exp(value) if value < 700 else math.inf


def perplexity(
    model: GPTDecoder,
    data: TextPredictionData,
    corpus: str,
    split: str,
    seq_len: int,
    max_tokens: int | None = None,
    *,
    rows: int = 16,
) -> dict[str, Any]:
    """Token- and word-level perplexity of `model` on one split (see the module docstring).

    `max_tokens` limits the evaluation to the first lines that fit in it (at least one line).
    Returns `corpus, split, lines, tokens, words, nll` (summed nats), `token_ppl`, `word_ppl`.
    """
    _check_vocab(model, data)
    ids, offsets = data.ids(corpus, split), data.offsets(corpus, split)
    lines = offsets.size - 1
    if max_tokens is not None:
        lines = max(1, int(np.searchsorted(offsets, max_tokens, side="right")) - 1)
    stream = np.concatenate(([data.eos_id], ids[: offsets[lines]])).astype(np.int64)
    nll, tokens = evaluate_nll(model, stream, seq_len, rows=rows)
    words = int(data.line_words(corpus, split)[:lines].sum()) + lines
    return {
        "corpus": corpus,
        "split": split,
        "lines": lines,
        "tokens": tokens,
        "words": words,
        "nll": nll,
        "token_ppl": _exp(nll / tokens),
        "word_ppl": _exp(nll / words),
    }


def _check_vocab(model: GPTDecoder, data: TextPredictionData) -> None:
    if model.vocab_size < data.vocab_size:
        raise ConfigError(
            f"the model has {model.vocab_size} embeddings, fewer than the tokenizer's "
            f"{data.vocab_size} pieces ({data.folder})"
        )


def _positive(name: str, value: Any, minimum: int) -> None:
    if not is_int(value) or value < minimum:
        raise ConfigError(f"{KEY}.{name} must be an integer >= {minimum}, got {value!r}")


@torch.no_grad()
def _greedy_words(
    model: GPTDecoder,
    contexts: list[list[int]],
    starts: np.ndarray,
    eos: int,
    max_new_tokens: int,
) -> list[list[int]]:
    """The pieces greedily generated after each context (all of one length) until the word ends."""
    device = next(model.parameters()).device
    pieces = starts.size
    logits, past = model(torch.tensor(contexts, dtype=torch.long, device=device))
    generated: list[list[int]] = [[] for _ in contexts]
    done = [False] * len(contexts)
    for step in range(max_new_tokens):
        chosen = logits[:, -1, :pieces].argmax(dim=-1)
        for row, token in enumerate(chosen.tolist()):
            if done[row]:
                continue
            if token == eos or (step > 0 and starts[token]):
                done[row] = True
            else:
                generated[row].append(token)
        if all(done) or step == max_new_tokens - 1:
            break
        logits, past = model(chosen.unsqueeze(1), past)
    return generated


def last_word_accuracy(
    model: GPTDecoder,
    data: TextPredictionData,
    corpus: str,
    split: str,
    *,
    min_context_words: int = 4,
    max_sentences: int | None = None,
    max_new_tokens: int = 8,
    batch_size: int = 32,
) -> dict[str, Any]:
    """LAMBADA-style last-word accuracy on a held-out split (see the module docstring).

    Returns `corpus, split, accuracy, n` (sentences scored), `correct`, `skipped` (sentences
    with too few words) and `examples` (the first few: context, target, predicted, correct).
    Contexts longer than `n_positions - max_new_tokens` keep their last tokens.
    """
    _positive("min_context_words", min_context_words, 1)
    _positive("max_new_tokens", max_new_tokens, 1)
    _positive("batch_size", batch_size, 1)
    if max_sentences is not None:
        _positive("max_sentences", max_sentences, 1)
    _check_vocab(model, data)
    keep = model.n_positions - max_new_tokens
    if keep < 2:
        raise ConfigError(
            f"{KEY}.max_new_tokens ({max_new_tokens}) leaves no context within the model's "
            f"{model.n_positions} positions"
        )
    sentences = [s.split() for s in data.sentences(corpus, split)]
    chosen = [w for w in sentences if len(w) > min_context_words]
    skipped = len(sentences) - len(chosen)
    if max_sentences is not None:
        chosen = chosen[:max_sentences]
    if not chosen:
        raise DataError(
            f"{data.folder}: no sentence of the {corpus} corpus's {split} split has at least "
            f"{min_context_words + 1} words"
        )
    processor, eos = data.processor, data.eos_id
    starts = np.array(
        [processor.id_to_piece(i).startswith(WORD_START) for i in range(data.vocab_size)]
    )
    encoded = processor.encode([" ".join(words[:-1]) for words in chosen])
    contexts = [[eos, *ids][-keep:] for ids in encoded]
    order = sorted(range(len(contexts)), key=lambda i: (len(contexts[i]), i))
    generated: dict[int, list[int]] = {}
    was_training = model.training
    model.eval()
    try:
        start = 0
        while start < len(order):
            length = len(contexts[order[start]])
            group = [i for i in order[start : start + batch_size] if len(contexts[i]) == length]
            outputs = _greedy_words(
                model, [contexts[i] for i in group], starts, eos, max_new_tokens
            )
            generated.update(zip(group, outputs, strict=True))
            start += len(group)
    finally:
        model.train(was_training)
    correct, examples = 0, []
    for index, words in enumerate(chosen):
        pieces = generated[index]
        predicted = processor.decode(pieces)
        hit = bool(pieces) and bool(starts[pieces[0]]) and predicted == words[-1]
        correct += hit
        if index < EXAMPLES:
            examples.append(
                {
                    "context": " ".join(words[:-1]),
                    "target": words[-1],
                    "predicted": predicted,
                    "correct": hit,
                }
            )
    return {
        "corpus": corpus,
        "split": split,
        "accuracy": correct / len(chosen),
        "n": len(chosen),
        "correct": correct,
        "skipped": skipped,
        "examples": examples,
    }
