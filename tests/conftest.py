"""Shared fixtures: the repository root, the shared data mirror (skipped when absent), the toy
task, and one torch thread for modules of tiny models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_mirror() -> Path | None:
    """`$NASFLOW_MIRROR`, else `../shared/data` beside the repository, else None."""
    candidates = [os.environ.get("NASFLOW_MIRROR"), REPO_ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def mirror() -> Path:
    """The shared data folder; tests using it are skipped cleanly when it is absent."""
    found = find_mirror()
    if found is None:
        pytest.skip("shared data not found (set NASFLOW_MIRROR or place ../shared/data)")
    return found


@pytest.fixture
def tfs_dir(mirror: Path) -> Path:
    """The released TFS-Eval sets (llmas `train-test_seedarchs`) in the shared data mirror."""
    folder = mirror / "llmas" / "train-test_seedarchs"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found in the shared data mirror")
    return folder


@pytest.fixture
def ptb_dir(mirror: Path) -> Path:
    """Penn Treebank in the shared data mirror (skipped when absent)."""
    folder = mirror / "ptb"
    if not (folder / "ptb.train.txt.gz").is_file():
        pytest.skip(f"{folder} has no ptb.train.txt.gz")
    return folder


# A learnable toy translation task: 16 synthetic words per language, translated word for word.
TOY_EN = [a + b for a in ("ka", "lo", "mi", "tu") for b in ("n", "s", "r", "p")]
TOY_DE = [a + b for a in ("zö", "be", "fa", "gu") for b in ("ch", "t", "ß", "m")]
TOY_VOCAB = 100


def write_tiny_corpus(folder: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Plain-text `{split}.{en,de}` files of the toy task (default train/val/test 300/40/30)."""
    import random

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (sizes or {"train": 300, "val": 40, "test": 30}).items():
        pairs = [[rng.randrange(16) for _ in range(rng.randint(2, 10))] for _ in range(count)]
        for lang, words in (("en", TOY_EN), ("de", TOY_DE)):
            text = "".join(" ".join(words[i] for i in pair) + "\n" for pair in pairs)
            (folder / f"{split}.{lang}").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared folder (SentencePiece + encoded splits) of the toy task, built once."""
    from nasflow.data import prepare_corpus

    root = tmp_path_factory.mktemp("tiny")
    corpus = write_tiny_corpus(root / "corpus")
    out = root / "prepared"
    prepare_corpus(
        corpus="custom",
        source_lang="en",
        target_lang="de",
        splits={"train": "train", "valid": "val", "test": "test"},
        out_dir=out,
        source="local",
        local_dir=corpus,
        vocab_size=TOY_VOCAB,
        seed=1,
    )
    return out


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module (`pytestmark = pytest.mark.usefixtures("one_thread")`):
    tiny models gain nothing from threads, and one keeps the tests fast on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
