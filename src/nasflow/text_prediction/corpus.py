"""The text-prediction experiment's vocabulary and encoded corpora (issue 19).

`build_data(pretrain, finetune, out_dir, vocab_size)` reads two corpora, trains one tokenizer on
both training splits and writes every split encoded; `load_data(out_dir)` reads it back.

- **pretrain** (next-word prediction): a PTB-layout folder or one plain-text file, read by
  `nasflow.data.ptb.read_splits` (train/valid/test; a single file gives its last 5% of lines as
  valid and no test). Quality is measured on `test`, or on `valid` when there is no test split
  (`heldout_split`, and the manifest's `heldout` and `note` say so).
- **finetune** (sentence completion): a Multi30k-layout folder (`train.en`, `val.en`,
  `test_2016_flickr.en`, each optionally `.gz`) or one plain-text file cut in line order into
  train/valid/test by `finetune_split` (valid and test get `ceil(fraction * lines)` lines each).

Split names are `train`, `valid` and `test` for both corpora (`val` is accepted for `valid`).
Blank lines are dropped (and counted in the manifest).

Tokenizer: `nasflow.lts.text._train` (SentencePiece BPE, `vocab_size` pieces, character
coverage 1.0, byte fallback, unknown piece `<spm-unk>` (id 0), an EOS piece `</s>` (id 1), no BOS,
one thread, unshuffled input: deterministic) trained once on the pretraining and finetuning
training lines. Every line is encoded followed by EOS, so EOS also marks the start of the next
sentence.

Files in `out_dir`: `spm.model`; `pretrain.npz` and `finetune.npz` with, per split, `<split>_ids`
(int32 stream, lines concatenated, each closed by EOS), `<split>_offsets` (int64, lines + 1:
line `i` is `ids[offsets[i]:offsets[i + 1]]`, its EOS included) and `<split>_words` (int32
words per line); `sentences.json` (`{corpus: {split: [sentence, ...]}}` for the held-out
splits `valid` and `test`: each line as the tokenizer decodes it, i.e. NFKC-normalised with
whitespace collapsed); and `data.json`, the manifest (sources, lines, tokens and words per split,
characters per token of the held-out splits, the fingerprint), written last.

Counts: `words` = whitespace words of the decoded lines + one end of sentence per line (the PTB
convention, so that word-level perplexity is comparable across tokenizers); `chars_per_token` =
characters of the decoded lines (spaces included, line breaks not) / their tokens, EOS not
counted (the definition of `nasflow.lts.text`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from nasflow.core.checks import is_int, is_number
from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import atomic_path, read_lines, write_json_atomic, write_text_atomic

__all__ = [
    "CORPORA",
    "SPLITS",
    "TextPredictionData",
    "build_data",
    "load_data",
]

CORPORA = ("pretrain", "finetune")
SPLITS = ("train", "valid", "test")
HELDOUT = ("valid", "test")
ALIASES = {"val": "valid"}
MODEL, SENTENCES, MANIFEST = "spm.model", "sentences.json", "data.json"
VOCAB_KEY, SPLIT_KEY = "text_prediction.vocab_size", "text_prediction.finetune_split"
MULTI30K = {"train": "train.en", "valid": "val.en", "test": "test_2016_flickr.en"}
FORMAT = 1


# ---- reading the corpora -------------------------------------------------------------------------
@dataclass
class _Corpus:
    """The non-blank lines of one corpus's splits and the file each came from."""

    source: str
    layout: str
    lines: dict[str, list[str]]
    files: dict[str, str]
    dropped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def _keep_text(corpus: _Corpus, name: str) -> _Corpus:
    """Drop blank lines; refuse a split without text or without word boundaries."""
    for split, lines in corpus.lines.items():
        kept = [line for line in lines if line.strip()]
        corpus.dropped[split] = len(lines) - len(kept)
        corpus.lines[split] = kept
        file = corpus.files[split]
        if not kept:
            raise DataError(f"{file}: the {name} corpus's {split} split has no text")
        if not any(len(line.split()) > 1 for line in kept):
            raise DataError(
                f"{file}: no line of the {name} corpus's {split} split has whitespace-separated "
                "words (word-level perplexity and last-word accuracy need word boundaries)"
            )
    return corpus


def _read_pretrain(path: Path) -> _Corpus:
    from nasflow.data.ptb import read_splits

    splits = read_splits(path)
    if path.is_file():
        files = {"train": str(path), "valid": str(path)}
        layout = "text file"
    else:
        files = {split: str(path / name) for split, name in splits.files.items()}
        files.setdefault("valid", files["train"])
        layout = "ptb folder"
    lines = {"train": splits.train, "valid": splits.valid}
    if splits.test:
        lines["test"] = splits.test
    elif "test" in files:
        raise DataError(f"{files['test']}: the pretrain corpus's test split has no text")
    corpus = _Corpus(str(path), layout, lines, files, notes={"valid_source": splits.valid_source})
    if "test" not in lines:
        corpus.notes["note"] = (
            "no test split: the validation split is the held-out split for every quality metric"
        )
    return _keep_text(corpus, "pretrain")


def _fractions(finetune_split: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(finetune_split) if isinstance(finetune_split, list | tuple) else ()
    if len(values) != 3 or not all(is_number(v) and v > 0 for v in values):
        raise ConfigError(
            f"{SPLIT_KEY} must be three positive fractions (train, valid, test), "
            f"got {finetune_split!r}"
        )
    if abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"{SPLIT_KEY} must sum to 1, got {list(values)} (sum {sum(values):g})")
    return float(values[0]), float(values[1]), float(values[2])


def _read_finetune(path: Path, fractions: tuple[float, float, float]) -> _Corpus:
    if path.is_dir():
        files, lines = {}, {}
        for split, stem in MULTI30K.items():
            found = [path / f"{stem}{suffix}" for suffix in ("", ".gz")]
            file = next((f for f in found if f.is_file()), None)
            if file is None:
                raise DataError(
                    f"{found[0]}: not found (nor {found[1].name}) in the finetune corpus"
                )
            files[split], lines[split] = str(file), read_lines(file)
        return _keep_text(_Corpus(str(path), "multi30k folder", lines, files), "finetune")
    if not path.is_file():
        raise DataError(f"{path}: finetune corpus not found")
    every = [line for line in read_lines(path) if line.strip()]
    n_valid, n_test = (math.ceil(f * len(every)) for f in fractions[1:])
    n_train = len(every) - n_valid - n_test
    if n_train < 1:
        raise DataError(
            f"{path}: {len(every)} non-blank line(s) are too few to split into train/valid/test "
            f"by {SPLIT_KEY} {list(fractions)}"
        )
    lines = {
        "train": every[:n_train],
        "valid": every[n_train : n_train + n_valid],
        "test": every[n_train + n_valid :],
    }
    files = dict.fromkeys(SPLITS, str(path))
    note = f"split in line order by {SPLIT_KEY} {list(fractions)}: {n_train}/{n_valid}/{n_test}"
    return _keep_text(
        _Corpus(str(path), "text file", lines, files, notes={"split": note}), "finetune"
    )


# ---- encoding ------------------------------------------------------------------------------------
def _encode(processor: Any, lines: list[str], eos: int) -> dict[str, np.ndarray]:
    """The split's stream (each line closed by EOS), line offsets and words per line."""
    from nasflow.data.prepare import encode_lines

    ids, offsets = encode_lines(processor, lines)
    out_offsets = offsets + np.arange(len(lines) + 1, dtype=np.int64)
    stream = np.full(int(out_offsets[-1]), eos, dtype=np.int32)
    text = np.ones(stream.size, dtype=bool)
    text[out_offsets[1:] - 1] = False
    stream[text] = ids
    return {"ids": stream, "offsets": out_offsets}


def _fingerprint(
    model: bytes, arrays: Mapping[str, Mapping[str, np.ndarray]], sentences: Any
) -> str:
    digest = hashlib.sha256(model)
    for corpus in sorted(arrays):
        for name in sorted(arrays[corpus]):
            array = np.ascontiguousarray(arrays[corpus][name])
            digest.update(f"{corpus}/{name}/{array.dtype.str}/{array.shape}".encode())
            digest.update(array.tobytes())
    digest.update(json.dumps(sentences, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:16]


def build_data(
    pretrain: str | Path,
    finetune: str | Path,
    out_dir: str | Path,
    vocab_size: int,
    *,
    finetune_split: Sequence[float] = (0.9, 0.05, 0.05),
) -> TextPredictionData:
    """Read both corpora, train the tokenizer, encode every split, write the files (see the
    module docstring; `data.json` last). Bad input fails before anything is written."""
    import sentencepiece as spm

    from nasflow.lts.text import UNK_PIECE, _train

    if not is_int(vocab_size) or vocab_size < 2:
        raise ConfigError(f"{VOCAB_KEY} must be an integer >= 2, got {vocab_size!r}")
    fractions = _fractions(finetune_split)
    corpora = {"pretrain": _read_pretrain(Path(pretrain))}
    corpora["finetune"] = _read_finetune(Path(finetune), fractions)
    training = corpora["pretrain"].lines["train"] + corpora["finetune"].lines["train"]
    model = _train(training, vocab_size, eos=True, key=VOCAB_KEY)
    processor = spm.SentencePieceProcessor(model_proto=model)
    eos = processor.eos_id()
    arrays: dict[str, dict[str, np.ndarray]] = {}
    sentences: dict[str, dict[str, list[str]]] = {}
    described: dict[str, Any] = {}
    for name, corpus in corpora.items():
        arrays[name], sentences[name] = {}, {}
        splits: dict[str, Any] = {}
        for split, lines in corpus.lines.items():
            encoded = _encode(processor, lines, eos)
            stream, bounds = encoded["ids"], encoded["offsets"]
            decoded = processor.decode(
                [stream[a : b - 1].tolist() for a, b in itertools.pairwise(bounds)]
            )
            words = np.fromiter((len(s.split()) for s in decoded), np.int32, len(decoded))
            for key, value in (*encoded.items(), ("words", words)):
                arrays[name][f"{split}_{key}"] = value
            entry = {
                "file": corpus.files[split],
                "lines": len(lines),
                "blank_lines_dropped": corpus.dropped[split],
                "tokens": int(encoded["ids"].size),
                "words": int(words.sum()) + len(lines),
            }
            if split in HELDOUT:
                sentences[name][split] = decoded
                chars = sum(map(len, decoded))
                entry["chars"] = chars
                entry["chars_per_token"] = chars / (entry["tokens"] - len(lines))
                entry["lines_altered_by_decoding"] = sum(
                    d != " ".join(line.split()) for d, line in zip(decoded, lines, strict=True)
                )
            splits[split] = entry
        described[name] = {
            "source": corpus.source,
            "layout": corpus.layout,
            "heldout": "test" if "test" in corpus.lines else "valid",
            **corpus.notes,
            "splits": splits,
        }
    info = {
        "format": FORMAT,
        "vocab_size": processor.get_piece_size(),
        "eos_id": eos,
        "tokenizer": (
            f"sentencepiece bpe, byte fallback, character coverage 1.0, unk {UNK_PIECE}, "
            "eos </s>, no bos; trained on the pretrain and finetune train lines"
        ),
        "sentencepiece_version": spm.__version__,
        "tokenizer_lines": len(training),
        "corpora": described,
        "fingerprint": _fingerprint(model, arrays, sentences),
    }
    _write(Path(out_dir), model, arrays, sentences, info)
    return TextPredictionData(Path(out_dir), model, arrays, sentences, info)


def _write(
    out: Path,
    model: bytes,
    arrays: Mapping[str, Mapping[str, np.ndarray]],
    sentences: Any,
    info: Mapping[str, Any],
) -> None:
    from nasflow.data.prepare import write_npz

    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # an interrupted rebuild leaves no stale manifest
    with atomic_path(out / MODEL) as tmp:
        tmp.write_bytes(model)
    for corpus, named in arrays.items():
        write_npz(out / f"{corpus}.npz", named)
    write_text_atomic(out / SENTENCES, json.dumps(sentences, ensure_ascii=False) + "\n")
    write_json_atomic(out / MANIFEST, info)


def load_data(folder: str | Path) -> TextPredictionData:
    """The data `build_data` wrote to `folder`, checked against its manifest's fingerprint."""
    folder = Path(folder)
    hint = "(run `nasflow text-prediction data`)"
    try:
        info = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        model = (folder / MODEL).read_bytes()
        arrays = {}
        for corpus in CORPORA:
            with np.load(folder / f"{corpus}.npz", allow_pickle=False) as npz:
                arrays[corpus] = {name: npz[name] for name in npz.files}
        sentences = json.loads((folder / SENTENCES).read_text(encoding="utf-8"))
    except (OSError, KeyError, ValueError) as error:
        raise DataError(f"{folder}: not a text-prediction data folder {hint}: {error}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise DataError(f"{folder / MANIFEST}: not a format-{FORMAT} manifest {hint}")
    if _fingerprint(model, arrays, sentences) != info.get("fingerprint"):
        raise DataError(
            f"{folder}: {MODEL}, the .npz files or {SENTENCES} do not match {MANIFEST} "
            f"(changed or partly rewritten) {hint}"
        )
    return TextPredictionData(folder, model, arrays, sentences, info)


# ---- the data ------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TextPredictionData:
    """The tokenizer and the encoded splits of both corpora (see the module docstring)."""

    folder: Path
    model: bytes
    arrays: Mapping[str, Mapping[str, np.ndarray]]
    held_out: Mapping[str, Mapping[str, list[str]]]
    info: Mapping[str, Any]

    @cached_property
    def processor(self) -> Any:
        """The `sentencepiece.SentencePieceProcessor`."""
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_proto=self.model)

    @property
    def eos_id(self) -> int:
        return int(self.info["eos_id"])

    @property
    def vocab_size(self) -> int:
        return int(self.info["vocab_size"])

    @property
    def fingerprint(self) -> str:
        return str(self.info["fingerprint"])

    def splits(self, corpus: str) -> tuple[str, ...]:
        """The splits `corpus` has, in the order train, valid, test."""
        return tuple(s for s in SPLITS if f"{s}_ids" in self._arrays(corpus))

    def heldout_split(self, corpus: str) -> str:
        """Where quality is measured: `test`, or `valid` when the corpus has no test split."""
        return "test" if "test" in self.splits(corpus) else "valid"

    def _arrays(self, corpus: str) -> Mapping[str, np.ndarray]:
        if corpus not in self.arrays:
            raise DataError(f"{self.folder}: no corpus {corpus!r} (corpora: {', '.join(CORPORA)})")
        return self.arrays[corpus]

    def _split(self, corpus: str, split: str) -> str:
        split = ALIASES.get(split, split)
        if split not in self.splits(corpus):
            raise DataError(
                f"{self.folder}: the {corpus} corpus has no {split!r} split "
                f"(splits: {', '.join(self.splits(corpus))})"
            )
        return split

    def ids(self, corpus: str, split: str) -> np.ndarray:
        """The split's int32 token stream (each line followed by EOS)."""
        return self._arrays(corpus)[f"{self._split(corpus, split)}_ids"]

    def offsets(self, corpus: str, split: str) -> np.ndarray:
        """Line boundaries in `ids` (lines + 1 values; each line's EOS included)."""
        return self._arrays(corpus)[f"{self._split(corpus, split)}_offsets"]

    def line_words(self, corpus: str, split: str) -> np.ndarray:
        """Whitespace words of each (decoded) line, without the end of sentence."""
        return self._arrays(corpus)[f"{self._split(corpus, split)}_words"]

    def lines(self, corpus: str, split: str) -> int:
        return int(self.line_words(corpus, split).size)

    def words(self, corpus: str, split: str) -> int:
        """Words of the split plus one end of sentence per line (the PTB convention)."""
        return int(self.line_words(corpus, split).sum()) + self.lines(corpus, split)

    def sentences(self, corpus: str, split: str) -> list[str]:
        """The held-out split's sentences as the tokenizer decodes them."""
        split = self._split(corpus, split)
        if split not in HELDOUT:
            raise DataError(f"{self.folder}: sentences are stored for valid and test, not {split}")
        return list(self.held_out[corpus][split])

    def chars_per_token(self, corpus: str, split: str) -> float:
        """Decoded characters per token of a held-out split (EOS not counted)."""
        split = self._split(corpus, split)
        entry = self.info["corpora"][corpus]["splits"][split]
        if "chars_per_token" not in entry:
            raise DataError(f"{self.folder}: characters per token are for valid and test only")
        return float(entry["chars_per_token"])

    def describe(self) -> str:
        """One line: lines and tokens per split of both corpora."""
        parts = []
        for corpus in CORPORA:
            sizes = ", ".join(
                f"{s} {self.lines(corpus, s)} lines/{self.ids(corpus, s).size} tokens"
                for s in self.splits(corpus)
            )
            parts.append(f"{corpus}: {sizes}")
        return "; ".join(parts)
