"""Translation corpora: registry and sources, checks, SentencePiece preparation."""

from nasflow.data.checks import check_exists, check_not_empty, check_same_length, read_parallel
from nasflow.data.corpora import (
    CORPORA,
    Corpus,
    RemoteSplit,
    ResolvedFile,
    download_url,
    get_corpus,
    resolve_file,
    sha256_file,
)
from nasflow.data.prepare import (
    EncodedSplit,
    encode_lines,
    load_split,
    load_vocab_size,
    prepare_corpus,
    read_manifest,
    train_sentencepiece,
)

__all__ = [
    "CORPORA",
    "Corpus",
    "EncodedSplit",
    "RemoteSplit",
    "ResolvedFile",
    "check_exists",
    "check_not_empty",
    "check_same_length",
    "download_url",
    "encode_lines",
    "get_corpus",
    "load_split",
    "load_vocab_size",
    "prepare_corpus",
    "read_manifest",
    "read_parallel",
    "resolve_file",
    "sha256_file",
    "train_sentencepiece",
]
