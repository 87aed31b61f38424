"""Prepare a translation corpus: joint SentencePiece model, encoded splits and a manifest.

The output folder holds `spm.model`, `spm.vocab`, per role (`train`, `valid`, `test`) the raw
text `{role}.{lang}` (BLEU references) and `{role}.npz` (int32 `src`/`tgt` ids of all sentences
concatenated, int64 `src_offsets`/`tgt_offsets` of length n+1), then `manifest.json`, written
last. Ids follow the fairseq layout (bos 0, pad 1, eos 2, unk 3); no bos/eos is added.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from nasflow import __version__
from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import atomic_path, write_json_atomic
from nasflow.data.checks import read_parallel
from nasflow.data.corpora import ResolvedFile, get_corpus, resolve_file, sha256_file

ROLES = ("train", "valid", "test")
MODEL_TYPES = ("bpe", "unigram", "char", "word")
SPECIAL_IDS = {"bos_id": 0, "pad_id": 1, "eos_id": 2, "unk_id": 3}
MANIFEST = "manifest.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ENCODE_CHUNK = 100_000


@dataclass
class _RoleData:
    """One role's resolved, checked input."""

    role: str
    split: str
    source: ResolvedFile
    target: ResolvedFile
    source_lines: list[str]
    target_lines: list[str]


@dataclass
class EncodedSplit:
    """A prepared split: concatenated ids plus offsets; `split[i]` is `(src_ids, tgt_ids)`."""

    src: np.ndarray
    tgt: np.ndarray
    src_offsets: np.ndarray
    tgt_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.src_offsets) - 1

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"sentence {index} out of range (0..{len(self) - 1})")
        index %= len(self)
        src = self.src[self.src_offsets[index] : self.src_offsets[index + 1]]
        tgt = self.tgt[self.tgt_offsets[index] : self.tgt_offsets[index + 1]]
        return src, tgt


def _validate_options(
    splits: Mapping[str, str],
    source_lang: str,
    target_lang: str,
    vocab_size: int,
    character_coverage: float,
    model_type: str,
    threads: int,
) -> None:
    unknown = sorted(set(splits) - set(ROLES))
    if unknown:
        raise ConfigError(
            f"splits: unknown role(s) {', '.join(unknown)} (roles: {', '.join(ROLES)})"
        )
    if "train" not in splits:
        raise ConfigError("splits: a 'train' split is required to train the SentencePiece model")
    if source_lang == target_lang:
        raise ConfigError(f"source_lang and target_lang are both {source_lang!r}")
    if vocab_size < len(SPECIAL_IDS) + 1:
        raise ConfigError(f"vocab_size: {vocab_size} is too small")
    if not 0.0 < character_coverage <= 1.0:
        raise ConfigError(f"character_coverage: {character_coverage} is not in (0, 1]")
    if model_type not in MODEL_TYPES:
        raise ConfigError(
            f"model_type: unknown {model_type!r} (choose from {', '.join(MODEL_TYPES)})"
        )
    if threads < 1:
        raise ConfigError(f"threads: {threads} must be at least 1")


def _load_roles(
    corpus: str,
    source_lang: str,
    target_lang: str,
    splits: Mapping[str, str],
    resolve: dict[str, Any],
) -> list[_RoleData]:
    """Resolve and check every input file, in role order, before any work starts."""
    roles = []
    for role in (r for r in ROLES if r in splits):
        split = splits[role]
        source = resolve_file(corpus, split, source_lang, **resolve)
        target = resolve_file(corpus, split, target_lang, **resolve)
        source_lines, target_lines = read_parallel(source.path, target.path)
        roles.append(_RoleData(role, split, source, target, source_lines, target_lines))
    return roles


def _spm_error(error: RuntimeError, vocab_size: int, train: _RoleData) -> Exception:
    files = f"{train.source.path}, {train.target.path}"
    message = str(error)
    if "Vocabulary size" in message:
        limit = re.search(r"<=\s*(\d+)", message)
        hint = f"; at most {limit.group(1)} is possible" if limit else ""
        return ConfigError(
            f"vocab_size: {vocab_size} is too large for the training data ({files}){hint}"
        )
    return DataError(f"SentencePiece training on {files} failed: {message}")


def train_sentencepiece(
    lines: Sequence[str],
    out_dir: str | Path,
    *,
    vocab_size: int,
    character_coverage: float = 1.0,
    model_type: str = "bpe",
    seed: int = 1,
    threads: int = 1,
) -> spm.SentencePieceProcessor:
    """Train a SentencePiece model on `lines`; write `spm.model` and `spm.vocab` atomically.

    Raises `RuntimeError` from sentencepiece (e.g. vocabulary too large for the data).
    """
    out_dir = Path(out_dir)
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()  # in memory: a model_prefix would be recorded inside the model
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        character_coverage=character_coverage,
        model_type=model_type,
        num_threads=threads,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=1,
        **SPECIAL_IDS,
    )
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    with atomic_path(out_dir / "spm.model") as tmp:
        tmp.write_bytes(model.getvalue())
    with atomic_path(out_dir / "spm.vocab") as tmp:
        tmp.write_bytes(_vocab_text(processor).encode("utf-8"))
    return processor


def _vocab_text(processor: spm.SentencePieceProcessor) -> str:
    """`piece<TAB>score` lines, as sentencepiece's own `.vocab` file."""
    size = processor.get_piece_size()
    return "".join(f"{processor.id_to_piece(i)}\t{processor.get_score(i):g}\n" for i in range(size))


def encode_lines(
    processor: spm.SentencePieceProcessor,
    lines: Sequence[str],
    threads: int = 1,
    chunk_size: int = ENCODE_CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """Encode `lines` with batched calls; return (int32 ids concatenated, int64 offsets n+1).

    Lines go to sentencepiece `chunk_size` at a time, so Python lists of ids stay small.
    """
    ids, lengths = [], []
    for start in range(0, len(lines), chunk_size):
        pieces = processor.encode(
            list(lines[start : start + chunk_size]), out_type=int, num_threads=threads
        )
        chunk_lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        flat = itertools.chain.from_iterable(pieces)
        ids.append(np.fromiter(flat, dtype=np.int32, count=int(chunk_lengths.sum())))
        lengths.append(chunk_lengths)
    offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    if lengths:
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
    return (np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32)), offsets


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an uncompressed `.npz` atomically; fixed timestamps make equal data equal bytes."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)


def _write_text(path: Path, lines: list[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))


def _write_role(
    out: Path,
    data: _RoleData,
    processor: spm.SentencePieceProcessor,
    langs: tuple[str, str],
    threads: int,
) -> dict[str, Any]:
    """Write one role's text and ids; return its manifest entry."""
    _write_text(out / f"{data.role}.{langs[0]}", data.source_lines)
    _write_text(out / f"{data.role}.{langs[1]}", data.target_lines)
    src, src_offsets = encode_lines(processor, data.source_lines, threads)
    tgt, tgt_offsets = encode_lines(processor, data.target_lines, threads)
    write_npz(
        out / f"{data.role}.npz",
        {"src": src, "tgt": tgt, "src_offsets": src_offsets, "tgt_offsets": tgt_offsets},
    )
    return {
        "split": data.split,
        "lines": len(data.source_lines),
        "source": {**data.source.as_dict(), "tokens": len(src)},
        "target": {**data.target.as_dict(), "tokens": len(tgt)},
    }


def prepare_corpus(
    *,
    corpus: str,
    source_lang: str,
    target_lang: str,
    splits: Mapping[str, str],
    out_dir: str | Path,
    source: str = "auto",
    local_dir: str | Path | None = None,
    cache_dir: str | Path = "resources/corpora",
    vocab_size: int = 8000,
    character_coverage: float = 1.0,
    model_type: str = "bpe",
    seed: int = 1,
    threads: int = 1,
    url_template: str | None = None,
) -> dict[str, Any]:
    """Resolve, check, tokenise and write a corpus into `out_dir`; return the manifest.

    `splits` maps a role (`train`, `valid`, `test`) to the corpus split name, e.g.
    `{"train": "train", "valid": "val", "test": "test_2016_flickr"}` for Multi30k.
    All inputs are resolved and checked before anything is written.
    """
    _validate_options(
        splits, source_lang, target_lang, vocab_size, character_coverage, model_type, threads
    )
    get_corpus(corpus)
    resolve = {
        "source": source,
        "local_dir": local_dir,
        "cache_dir": cache_dir,
        "url_template": url_template,
    }
    roles = _load_roles(corpus, source_lang, target_lang, splits, resolve)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    train = roles[0]
    try:
        processor = train_sentencepiece(
            train.source_lines + train.target_lines,
            out,
            vocab_size=vocab_size,
            character_coverage=character_coverage,
            model_type=model_type,
            seed=seed,
            threads=threads,
        )
    except RuntimeError as error:
        raise _spm_error(error, vocab_size, train) from None
    langs = (source_lang, target_lang)
    entries = {data.role: _write_role(out, data, processor, langs, threads) for data in roles}
    manifest = {
        "nasflow_version": __version__,
        "corpus": corpus,
        "languages": {"source": source_lang, "target": target_lang},
        "source": source,
        "splits": entries,
        "vocab_size": processor.get_piece_size(),
        "spm": {
            "model_type": model_type,
            "vocab_size": vocab_size,
            "character_coverage": character_coverage,
            "seed": seed,
            "threads": threads,
            "input": [str(train.source.path), str(train.target.path)],
            "sentencepiece_version": spm.__version__,
            **SPECIAL_IDS,
        },
        "outputs": _output_hashes(out, list(entries), langs),
    }
    write_json_atomic(out / MANIFEST, manifest)
    return manifest


def _output_hashes(out: Path, roles: list[str], langs: tuple[str, str]) -> dict[str, str]:
    names = ["spm.model", "spm.vocab"]
    for role in roles:
        names += [f"{role}.{langs[0]}", f"{role}.{langs[1]}", f"{role}.npz"]
    return {name: sha256_file(out / name) for name in names}


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """Load `manifest.json` of a prepared folder."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: file not found (run `nasflow data prepare` first)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: invalid JSON ({error})") from None


def load_vocab_size(out_dir: str | Path) -> int:
    """Vocabulary size (number of SentencePiece ids) of a prepared folder."""
    manifest = read_manifest(out_dir)
    try:
        return int(manifest["vocab_size"])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{Path(out_dir) / MANIFEST}: missing or bad 'vocab_size'") from None


def load_split(out_dir: str | Path, role: str) -> EncodedSplit:
    """Load `{role}.npz` of a prepared folder."""
    path = Path(out_dir) / f"{role}.npz"
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    keys = ("src", "tgt", "src_offsets", "tgt_offsets")
    with np.load(path, allow_pickle=False) as archive:
        missing = [key for key in keys if key not in archive.files]
        if missing:
            raise DataError(f"{path}: missing array(s) {', '.join(missing)}")
        split = EncodedSplit(*(archive[key] for key in keys))
    if len(split.src_offsets) != len(split.tgt_offsets) or len(split.src_offsets) < 1:
        raise DataError(f"{path}: src_offsets and tgt_offsets differ in length")
    return split
