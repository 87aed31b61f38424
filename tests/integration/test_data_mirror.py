"""Prepare real corpora from the shared data mirror (skipped when the folder is absent)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sentencepiece as spm

from nasflow.data import get_corpus, load_split, load_vocab_size, prepare_corpus, resolve_file

pytestmark = pytest.mark.shared


@pytest.fixture
def mirror(mirror: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared data folder from conftest, exported as $NASFLOW_MIRROR for the resolver."""
    monkeypatch.setenv("NASFLOW_MIRROR", str(mirror))
    return mirror


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registry_hashes_match_mirror(mirror: Path) -> None:
    for name in ("multi30k", "wmt14_en_de", "wmt14_en_fr", "wmt19_en_de"):
        for remote in get_corpus(name).splits.values():
            for lang, expected in (remote.sha256 if remote else {}).items():
                assert _sha(mirror / remote.mirror.format(lang=lang)) == expected


def test_prepare_multi30k_en_de(mirror: Path, tmp_path: Path) -> None:
    out = tmp_path / "multi30k"
    splits = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
    manifest = prepare_corpus(
        corpus="multi30k",
        source_lang="en",
        target_lang="de",
        splits=splits,
        out_dir=out,
        vocab_size=1000,
        cache_dir=tmp_path / "cache",
        threads=2,
    )
    assert not (tmp_path / "cache").exists()  # nothing downloaded
    assert load_vocab_size(out) == 1000
    processor = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
    for role, lines in {"train": 29000, "valid": 1014, "test": 1000}.items():
        entry = manifest["splits"][role]
        assert entry["lines"] == lines and len(load_split(out, role)) == lines
        for side, lang in (("source", "en"), ("target", "de")):
            path = mirror / "multi30k" / f"{splits[role]}.{lang}.gz"
            assert entry[side]["origin"] == "mirror" and entry[side]["path"] == str(path)
            assert entry[side]["sha256"] == _sha(path)
            assert entry[side]["sha256"] == get_corpus("multi30k").splits[splits[role]].sha256[lang]
    test = load_split(out, "test")
    references = (out / "test.de").read_text(encoding="utf-8").splitlines()
    assert processor.decode(test[0][1].tolist()) == references[0]


def test_newstest_from_mirror_and_local_train(mirror: Path, tmp_path: Path) -> None:
    resolved = resolve_file("wmt14_en_fr", "newstest2014", "fr", cache_dir=tmp_path)
    assert resolved.origin == "mirror" and resolved.path.name == "en-fr.newstest2014.fr.gz"
    local = tmp_path / "local"
    local.mkdir()
    for lang in ("en", "de"):  # stand-in training data for a local-only split
        (local / f"train.{lang}.gz").write_bytes((mirror / f"multi30k/val.{lang}.gz").read_bytes())
    manifest = prepare_corpus(
        corpus="wmt14_en_de",
        source_lang="de",
        target_lang="en",
        splits={"train": "train", "valid": "newstest2013", "test": "newstest2014"},
        out_dir=tmp_path / "out",
        local_dir=local,
        cache_dir=tmp_path / "cache",
        vocab_size=500,
    )
    origins = {role: entry["source"]["origin"] for role, entry in manifest["splits"].items()}
    assert origins == {"train": "local", "valid": "mirror", "test": "mirror"}
    assert manifest["splits"]["test"]["lines"] == 3003
    assert manifest["splits"]["valid"]["lines"] == 3000
