"""Real text for the latency protocol: a tokenizer, the held-out split, characters per token.

`build_text_set(corpus, out_dir, vocab_size)` trains a SentencePiece BPE model with `vocab_size`
pieces on the corpus's **training** split (`nasflow.data.ptb.read_splits`: a PTB-layout folder,
by default `$NASFLOW_MIRROR/ptb`, or one plain-text file), encodes its **held-out** (validation)
split line by line and writes `spm.model`, `heldout.npz` (int32 `ids` of every held-out line
concatenated, int64 `offsets`) and `text.json` (written last). `load_text_set(out_dir)` reads them.

- Tokenizer: BPE, character coverage 1.0, **byte fallback** (a character never seen in training
  becomes its UTF-8 bytes, as in GPT-2's byte-level BPE, so decoding is lossless), no BOS/EOS,
  and the unknown piece renamed to `<spm-unk>` (SentencePiece drops the characters of its own
  meta pieces, so PTB's literal `<unk>` placeholders would otherwise decode as ` ⁇ unk ⁇ `).
  One thread, unshuffled input: the same corpus gives the same model.
- **Characters per token** = characters of the decoded held-out lines (spaces between words
  included, line breaks not; the tokenizer's NFKC normalisation and whitespace collapsing
  applied) / SentencePiece tokens of those lines. `text.json` also counts the lines whose
  decoding differs from the whitespace-normalised original (0 on PTB).
- `TextSet.prompts(count, min_len, max_len, seed)`: `count` prompts of real held-out text; prompt
  `i` has a length drawn uniformly from `[min_len, max_len]` tokens and starts at a uniform
  offset of the held-out token stream (lines concatenated, so a prompt may span sentences), both
  from `numpy.random.default_rng(seed)`.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import atomic_path, write_json_atomic
from nasflow.space.gpt_params import GPT2_VOCAB

__all__ = [
    "DEFAULT_VOCAB",
    "TextSet",
    "build_text_set",
    "load_text_set",
    "resolve_text_corpus",
    "text_corpus",
    "tokenizer_vocab",
]

#: Tokenizer pieces unless `lts.text.vocab_size` says otherwise (config/README.md says why).
DEFAULT_VOCAB = 4000
UNK_PIECE = "<spm-unk>"
MODEL, HELDOUT, MANIFEST = "spm.model", "heldout.npz", "text.json"
NO_CORPUS = (
    "config key lts.text.corpus: the latency protocol needs a plain-text corpus (prompts and "
    "characters per token come from it); set lts.text.corpus (a PTB-layout folder or a text "
    "file), lts.proxy_check.corpus, or NASFLOW_MIRROR (with ptb/)"
)


# ---- configuration -----------------------------------------------------------------------------
def resolve_text_corpus(section: Mapping[str, Any], mirror: str | None = None) -> str | None:
    """`lts.text.corpus`, else `lts.proxy_check.corpus`, else `$NASFLOW_MIRROR/ptb`, else None."""
    for key in ("text", "proxy_check"):
        value = (section.get(key) or {}).get("corpus")
        if value:
            return str(value)
    mirror = os.environ.get("NASFLOW_MIRROR") if mirror is None else mirror
    return str(Path(mirror) / "ptb") if mirror else None


def text_corpus(section: Mapping[str, Any], mirror: str | None = None) -> Path:
    """The corpus path; a `ConfigError` naming `lts.text.corpus` when none is set or it is
    missing."""
    value = resolve_text_corpus(section, mirror)
    if value is None:
        raise ConfigError(NO_CORPUS)
    if not Path(value).exists():
        raise ConfigError(f"config key lts.text.corpus: {value} not found")
    return Path(value)


def tokenizer_vocab(section: Mapping[str, Any]) -> int:
    """`lts.text.vocab_size`, default `min(DEFAULT_VOCAB, lts.measure.vocab_size)`: the tokenizer
    never has more pieces than the measured model has embeddings (its ids are the prompts)."""
    model_vocab = (section.get("measure") or {}).get("vocab_size", GPT2_VOCAB)
    value = (section.get("text") or {}).get("vocab_size")
    if value is None:
        return min(DEFAULT_VOCAB, int(model_vocab))
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ConfigError(f"config key lts.text.vocab_size must be an integer >= 2, got {value!r}")
    if value > model_vocab:
        raise ConfigError(
            f"config key lts.text.vocab_size ({value}) exceeds lts.measure.vocab_size "
            f"({model_vocab}): the tokenizer's ids must be valid inputs of the measured model"
        )
    return value


# ---- the text set ------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TextSet:
    """The held-out split as token ids, with what the measurement needs from it."""

    ids: np.ndarray
    chars: int
    vocab_size: int
    fingerprint: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return int(self.ids.size)

    @property
    def chars_per_token(self) -> float:
        """Decoded characters of the held-out text per token (see the module docstring)."""
        return self.chars / self.tokens

    def prompts(self, count: int, min_len: int, max_len: int, seed: int) -> list[np.ndarray]:
        """`count` int64 prompts of held-out text, lengths uniform in `[min_len, max_len]`."""
        if not 1 <= min_len <= max_len:
            raise ConfigError(f"prompt lengths need 1 <= min <= max, got {min_len}, {max_len}")
        if max_len > self.tokens:
            raise DataError(
                f"the held-out text has {self.tokens} tokens, fewer than a {max_len}-token prompt"
            )
        rng = np.random.default_rng(seed)
        lengths = rng.integers(min_len, max_len + 1, size=count)
        starts = [int(rng.integers(0, self.tokens - n + 1)) for n in lengths]
        return [self.ids[s : s + n].astype(np.int64) for s, n in zip(starts, lengths, strict=True)]


def _train(
    lines: Sequence[str], vocab_size: int, *, eos: bool = False, key: str = "lts.text.vocab_size"
) -> bytes:
    """A serialised SentencePiece BPE model (options in the module docstring); `eos` adds an
    end-of-sentence piece (id 1, `</s>`); `key` is the config key a failure names."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.set_random_generator_seed(1)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=model,
            vocab_size=vocab_size,
            model_type="bpe",
            character_coverage=1.0,
            byte_fallback=True,
            unk_id=0,
            unk_piece=UNK_PIECE,
            bos_id=-1,
            eos_id=1 if eos else -1,
            pad_id=-1,
            num_threads=1,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            minloglevel=2,
        )
    except RuntimeError as error:
        raise ConfigError(
            f"config key {key}: SentencePiece could not train {vocab_size} pieces "
            f"on this corpus ({error})"
        ) from None
    return model.getvalue()


def _fingerprint(model: bytes, ids: np.ndarray) -> str:
    digest = hashlib.sha256(model)
    digest.update(np.ascontiguousarray(ids, dtype=np.int32).tobytes())
    return digest.hexdigest()[:16]


def build_text_set(corpus: str | Path, out_dir: str | Path, vocab_size: int) -> TextSet:
    """Train the tokenizer, encode the held-out split, write the three files; return the set."""
    import sentencepiece as spm

    from nasflow.data.prepare import encode_lines, write_npz
    from nasflow.data.ptb import read_splits

    splits = read_splits(corpus)
    heldout = [line for line in splits.valid if line.strip()]
    if not heldout:
        raise DataError(f"{corpus}: the held-out split ({splits.valid_source}) has no text")
    model = _train(splits.train, vocab_size)
    processor = spm.SentencePieceProcessor(model_proto=model)
    ids, offsets = encode_lines(processor, heldout)
    decoded = processor.decode([ids[a:b].tolist() for a, b in itertools.pairwise(offsets)])
    chars = sum(map(len, decoded))
    altered = sum(d != " ".join(line.split()) for d, line in zip(decoded, heldout, strict=True))
    text = TextSet(ids, chars, processor.get_piece_size(), _fingerprint(model, ids))
    info = {
        "corpus": str(corpus),
        "files": splits.files,
        "heldout_source": splits.valid_source,
        "train_lines": len(splits.train),
        "heldout_lines": len(heldout),
        "heldout_tokens": text.tokens,
        "heldout_chars": chars,
        "chars_per_token": text.chars_per_token,
        "lines_altered_by_decoding": altered,
        "vocab_size": text.vocab_size,
        "tokenizer": "sentencepiece bpe, byte fallback, character coverage 1.0",
        "sentencepiece_version": spm.__version__,
        "fingerprint": text.fingerprint,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / MODEL) as tmp:
        tmp.write_bytes(model)
    write_npz(out / HELDOUT, {"ids": ids, "offsets": offsets})
    write_json_atomic(out / MANIFEST, info)
    return TextSet(ids, chars, text.vocab_size, text.fingerprint, info)


def load_text_set(folder: str | Path) -> TextSet:
    """The set `build_text_set` wrote to `folder` (checked against its fingerprint)."""
    folder = Path(folder)
    try:
        info = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        model = (folder / MODEL).read_bytes()
        with np.load(folder / HELDOUT) as arrays:
            ids = arrays["ids"]
    except (OSError, KeyError, ValueError) as error:
        raise DataError(f"{folder}: not a text set (run `nasflow lts text`): {error}") from None
    if _fingerprint(model, ids) != info.get("fingerprint"):
        raise DataError(f"{folder}: {MODEL} or {HELDOUT} does not match {MANIFEST}")
    chars, vocab = int(info["heldout_chars"]), int(info["vocab_size"])
    return TextSet(ids, chars, vocab, info["fingerprint"], info)
