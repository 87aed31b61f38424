"""The suggestion engine's greedy continuations, generated once per model and split.

Definitions (the thresholds are applied later, by `nasflow.text_prediction.metrics`):

- **Positions**: for a held-out sentence of n words w1..wn (whitespace-split), a position is
  each word boundary i = 1..n-1: the user has typed w1..wi and the space after wi; the real
  continuation is "w(i+1) ... wn". `max_positions` keeps at most that many positions per
  sentence, evenly spaced (i = 1 + floor(j (n-1) / max_positions), j = 0, 1, ...);
  `max_sentences` keeps the first sentences.
- **Generation** (threshold-independent): context = [EOS] + encode(w1..wi) (every training line
  was encoded followed by EOS, so EOS is the start marker; a context longer than the model's
  `n_positions - max_tokens + 1` keeps its last tokens); greedy argmax for up to `max_tokens`
  tokens with the KV cache, stopping early at EOS (the EOS is recorded and counts as one of the
  `max_tokens`). For each generated token the record keeps its id, its log-probability
  (log-softmax in float32 over the tokenizer's pieces: ids past them, a padded embedding, are
  never generated) and whether it starts a new word (its piece starts with '▁', U+2581); p1 is
  the first token's probability. `texts[j-1]` is the decoding of the first j generated tokens
  (EOS excluded), so scoring needs no tokenizer.
- **Batching**: positions whose contexts have the same length are run together (no padding), at
  most `batch` per forward pass, and rows leave the batch when they finish; the result equals the
  one-position-at-a-time computation up to float rounding (the same tokens on all but exact
  ties) and is deterministic. Records come out in sentence order, then position order.

Record file (`SuggestionRecords.save` / `load`): JSON lines written atomically; the first line is
the header `{"format": "nasflow-suggestions", "version": 1, "max_tokens", "eos_id", "sentences",
"positions"}`, then one object per position with the `PositionRecord` fields (`sentence`,
`position`, `continuation`, `p1`, `tokens`, `logprobs`, `word_start`, `eos`, `texts`). Floats
are written with `repr` precision, so a loaded file scores exactly as the records it came from.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from nasflow.core.checks import is_int
from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import iter_jsonl, write_jsonl_atomic

__all__ = [
    "WORD_START",
    "PositionRecord",
    "SuggestionRecords",
    "Tokenizer",
    "collect",
    "positions_of",
]

WORD_START = "\u2581"
FORMAT, VERSION = "nasflow-suggestions", 1


class Tokenizer(Protocol):
    """The part of `sentencepiece.SentencePieceProcessor` the engine uses."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def id_to_piece(self, id: int) -> str: ...

    def get_piece_size(self) -> int: ...


@dataclass(frozen=True)
class PositionRecord:
    """One position's greedy continuation (see the module docstring)."""

    sentence: int
    position: int
    continuation: str
    p1: float
    tokens: tuple[int, ...]
    logprobs: tuple[float, ...]
    word_start: tuple[bool, ...]
    eos: bool
    texts: tuple[str, ...]

    @property
    def length(self) -> int:
        """Generated tokens before the EOS (all of them when there is none)."""
        return len(self.tokens) - self.eos

    def check(self) -> None:
        """Raise `ValueError` when the fields disagree with each other."""
        n = len(self.tokens)
        if len(self.logprobs) != n or len(self.word_start) != n:
            raise ValueError("tokens, logprobs and word_start differ in length")
        if len(self.texts) != self.length:
            raise ValueError(f"texts has {len(self.texts)} entries, expected {self.length}")
        if self.eos and (n == 0 or self.word_start[-1]):
            raise ValueError("eos is set but the last token is missing or starts a word")
        if not 0.0 <= self.p1 <= 1.0 or self.position < 1:
            raise ValueError("p1 must be in [0, 1] and position >= 1")

    def to_dict(self) -> dict[str, Any]:
        return {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> PositionRecord:
        record = cls(
            sentence=int(row["sentence"]),
            position=int(row["position"]),
            continuation=str(row["continuation"]),
            p1=float(row["p1"]),
            tokens=tuple(int(t) for t in row["tokens"]),
            logprobs=tuple(float(x) for x in row["logprobs"]),
            word_start=tuple(bool(x) for x in row["word_start"]),
            eos=bool(row["eos"]),
            texts=tuple(str(t) for t in row["texts"]),
        )
        record.check()
        return record


@dataclass(frozen=True, eq=False)
class SuggestionRecords:
    """Every position's continuation for one model and split (compared by identity, so that
    `metrics` can cache its arrays per records object)."""

    positions: tuple[PositionRecord, ...]
    max_tokens: int
    eos_id: int
    sentences: int

    def __len__(self) -> int:
        return len(self.positions)

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "max_tokens": self.max_tokens,
            "eos_id": self.eos_id,
            "sentences": self.sentences,
            "positions": len(self.positions),
        }

    def save(self, path: str | Path) -> None:
        """Write the JSON-lines file (header first) atomically."""
        write_jsonl_atomic(path, [self.header(), *(p.to_dict() for p in self.positions)])

    @classmethod
    def load(cls, path: str | Path) -> SuggestionRecords:
        """Read a file written by `save`; a `DataError` names the file and line of a bad row."""
        rows = iter_jsonl(path)
        first = next(rows, None)
        if first is None or first[1].get("format") != FORMAT:
            raise DataError(f"{path}: not a suggestion-records file (no {FORMAT} header)")
        head = first[1]
        if head.get("version") != VERSION:
            raise DataError(f"{path}: records version {head.get('version')}, expected {VERSION}")
        positions = []
        for number, row in rows:
            try:
                positions.append(PositionRecord.from_dict(row))
            except (KeyError, TypeError, ValueError) as error:
                raise DataError(f"{path}:{number}: bad position record ({error})") from None
        if len(positions) != head.get("positions"):
            raise DataError(
                f"{path}: {len(positions)} position records, the header says "
                f"{head.get('positions')} (a truncated file?)"
            )
        try:
            return cls(
                tuple(positions),
                int(head["max_tokens"]),
                int(head["eos_id"]),
                int(head["sentences"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{path}:1: bad header ({error})") from None


def positions_of(n_words: int, max_positions: int | None = None) -> list[int]:
    """The word boundaries 1..n_words-1 of a sentence, at most `max_positions` evenly spaced."""
    count = max(n_words - 1, 0)
    if max_positions is None or max_positions >= count:
        return list(range(1, count + 1))
    return [1 + j * count // max_positions for j in range(max_positions)]


def _check_settings(max_tokens: Any, max_positions: Any, max_sentences: Any, batch: Any) -> None:
    for key, value, allow_none in (
        ("max_tokens", max_tokens, False),
        ("max_positions", max_positions, True),
        ("max_sentences", max_sentences, True),
        ("batch", batch, False),
    ):
        if (value is None and allow_none) or (is_int(value) and value >= 1):
            continue
        extra = " or null" if allow_none else ""
        raise ConfigError(
            f"config key text_prediction.suggest.{key} must be an integer >= 1{extra}, "
            f"got {value!r}"
        )


def _rows(state: Any, keep: torch.Tensor) -> Any:
    """The rows `keep` of every tensor in a (nested list/tuple) batch-first cache."""
    if isinstance(state, torch.Tensor):
        return state[keep]
    return type(state)(_rows(part, keep) for part in state)


@torch.no_grad()
def _generate(
    model: nn.Module,
    contexts: torch.Tensor,
    eos_id: int,
    max_tokens: int,
    n_pieces: int,
) -> list[tuple[list[int], list[float]]]:
    """Greedy continuations of equal-length `contexts` (B, T): per row, ids and log-probs."""
    out: list[tuple[list[int], list[float]]] = [([], []) for _ in range(contexts.shape[0])]
    rows = torch.arange(contexts.shape[0])
    logits, past = model(contexts)
    for step in range(max_tokens):
        logp = torch.log_softmax(logits[:, -1, :n_pieces].float(), dim=-1)
        token = logp.argmax(dim=-1)
        token_logp = logp.gather(1, token[:, None])[:, 0]
        for row, t, lp in zip(rows.tolist(), token.tolist(), token_logp.tolist(), strict=True):
            out[row][0].append(t)
            out[row][1].append(lp)
        alive = token != eos_id
        if step == max_tokens - 1 or not bool(alive.any()):
            break
        if not bool(alive.all()):
            rows, token = rows[alive], token[alive]
            past = _rows(past, alive)
        logits, past = model(token[:, None], past)
    return out


def collect(
    model: nn.Module,
    processor: Tokenizer,
    eos_id: int,
    sentences: Sequence[str],
    *,
    max_tokens: int = 8,
    max_positions: int | None = None,
    max_sentences: int | None = None,
    batch: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> SuggestionRecords:
    """Greedy continuations at every position of `sentences` (see the module docstring).

    `model` is a `GPTDecoder`, or any decoder with `forward(tokens, past) -> (logits, past)`
    whose cache tensors are batch-first (a `TXLDecoder`'s memory); `progress(done, total)` is
    called after each forward batch with counts of positions."""
    _check_settings(max_tokens, max_positions, max_sentences, batch)
    n_pieces = processor.get_piece_size()
    if not 0 <= eos_id < n_pieces:
        raise ConfigError(f"eos_id {eos_id} is not a piece of the tokenizer ({n_pieces} pieces)")
    starts = [processor.id_to_piece(i).startswith(WORD_START) for i in range(n_pieces)]
    starts[eos_id] = False
    n_positions = getattr(model, "n_positions", None)
    longest = None if n_positions is None else n_positions - max_tokens + 1
    if longest is not None and longest < 1:
        raise ConfigError(
            f"config key text_prediction.suggest.max_tokens: {max_tokens} new tokens do not fit "
            f"the model's {n_positions} positions"
        )

    chosen = list(sentences)[:max_sentences] if max_sentences else list(sentences)
    jobs: list[tuple[int, int, str]] = []  # (sentence, position, continuation)
    groups: dict[int, list[tuple[int, list[int]]]] = defaultdict(list)
    for index, sentence in enumerate(chosen):
        words = sentence.split()
        for i in positions_of(len(words), max_positions):
            context = [eos_id, *processor.encode(" ".join(words[:i]))]
            if longest is not None:
                context = context[-longest:]
            groups[len(context)].append((len(jobs), context))
            jobs.append((index, i, " ".join(words[i:])))
    if not jobs:
        raise DataError(
            f"no positions to score: none of the {len(chosen)} sentences has two or more words"
        )

    device = next(model.parameters(), torch.empty(0)).device
    results: list[tuple[list[int], list[float]]] = [([], [])] * len(jobs)
    was_training = model.training
    model.eval()
    done = 0
    try:
        for length in sorted(groups):
            group = groups[length]
            for lo in range(0, len(group), batch):
                part = group[lo : lo + batch]
                contexts = torch.tensor([c for _, c in part], dtype=torch.long, device=device)
                for (job, _), result in zip(
                    part, _generate(model, contexts, eos_id, max_tokens, n_pieces), strict=True
                ):
                    results[job] = result
                done += len(part)
                if progress is not None:
                    progress(done, len(jobs))
    finally:
        model.train(was_training)

    records = []
    for (index, i, continuation), (tokens, logprobs) in zip(jobs, results, strict=True):
        eos = tokens[-1] == eos_id
        n = len(tokens) - eos
        records.append(
            PositionRecord(
                sentence=index,
                position=i,
                continuation=continuation,
                p1=min(1.0, math.exp(logprobs[0])),
                tokens=tuple(tokens),
                logprobs=tuple(logprobs),
                word_start=tuple(starts[t] for t in tokens),
                eos=eos,
                texts=tuple(processor.decode(tokens[:j]) for j in range(1, n + 1)),
            )
        )
    return SuggestionRecords(tuple(records), max_tokens, eos_id, len(chosen))
