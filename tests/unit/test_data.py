"""Unit tests of nasflow.data on tiny synthetic corpora (no network beyond 127.0.0.1)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import importlib
import json
import random
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from nasflow.cli import data as data_cli
from nasflow.core.errors import ConfigError, DataError
from nasflow.data import (
    CORPORA,
    Corpus,
    RemoteSplit,
    download_url,
    encode_lines,
    get_corpus,
    load_split,
    load_vocab_size,
    prepare_corpus,
    read_parallel,
    resolve_file,
)

EN_WORDS = ["the", "a", "cat", "dog", "sees", "runs", "big", "small", "red", "house", "man"]
DE_WORDS = ["der", "die", "das", "Katze", "Hund", "sieht", "läuft", "groß", "klein", "Haus"]
SPLITS = {"train": "train", "valid": "dev", "test": "test"}
VOCAB = 60


def _sentences(words: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 9))) for _ in range(count)]


def _write(path: Path, lines: list[str], gz: bool = False) -> Path:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def _no_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NASFLOW_MIRROR", raising=False)


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A `custom` corpus folder: train (plain text), dev and test (gzip)."""
    folder = tmp_path / "corpus"
    for index, (split, count) in enumerate([("train", 300), ("dev", 20), ("test", 25)]):
        gz = split != "train"
        suffix = ".gz" if gz else ""
        _write(folder / f"{split}.en{suffix}", _sentences(EN_WORDS, count, index), gz)
        _write(folder / f"{split}.de{suffix}", _sentences(DE_WORDS, count, index + 10), gz)
    return folder


def _prepare(corpus_dir: Path, out: Path, **kwargs) -> dict:
    options = {
        "corpus": "custom",
        "source_lang": "en",
        "target_lang": "de",
        "splits": SPLITS,
        "out_dir": out,
        "local_dir": corpus_dir,
        "vocab_size": VOCAB,
    }
    return prepare_corpus(**{**options, **kwargs})


# --- registry -------------------------------------------------------------------------------


def test_registry_tables() -> None:
    multi30k = get_corpus("multi30k")
    assert set(multi30k.splits) == {"train", "val", "test_2016_flickr", "test_2017_flickr"}
    for remote in multi30k.splits.values():
        assert remote is not None and set(remote.sha256) == {"en", "de", "fr"}
    assert get_corpus("wmt14_en_de").splits["train"] is None
    assert get_corpus("wmt14_en_fr").splits["newstest2014"].sacrebleu == "wmt14/full"
    with pytest.raises(ConfigError, match="unknown corpus 'nope'"):
        get_corpus("nope")


def test_local_only_split_needs_local_dir(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"'wmt19_en_de' split 'train' .*no public source.*local_dir"
    ):
        resolve_file("wmt19_en_de", "train", "en", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="no split 'bogus'"):
        resolve_file("multi30k", "bogus", "en")
    with pytest.raises(ConfigError, match="language 'xx'"):
        resolve_file("multi30k", "train", "xx")


# --- checks ---------------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.en", ["x"])
    with pytest.raises(DataError, match=r"a\.de: file not found"):
        read_parallel(src, tmp_path / "a.de")


@pytest.mark.parametrize("lines", [[], ["", "  ", ""]])
def test_empty_corpus_is_named(tmp_path: Path, lines: list[str]) -> None:
    src = _write(tmp_path / "a.en", lines)
    tgt = _write(tmp_path / "a.de", ["x"] * len(lines))
    with pytest.raises(DataError, match=rf"{src}: empty corpus"):
        read_parallel(src, tgt)


def test_one_sided_blank_line_is_fine(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.en", ["hello", "", "bye"])
    tgt = _write(tmp_path / "a.de", ["hallo", "leer", ""])
    assert read_parallel(src, tgt) == (["hello", "", "bye"], ["hallo", "leer", ""])


def test_line_count_mismatch_names_both_files(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.en", ["1", "2", "3"])
    tgt = _write(tmp_path / "a.de.gz", ["1", "2"], gz=True)
    with pytest.raises(DataError) as info:
        read_parallel(src, tgt)
    message = str(info.value)
    assert f"{src} has 3 lines" in message and f"{tgt} has 2 lines" in message


def test_bad_utf8_names_file_and_line(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.en", ["ok", "fine"])
    tgt = tmp_path / "a.de"
    tgt.write_bytes(b"gut\nschlecht \xff\n")
    with pytest.raises(DataError, match=rf"{tgt}:2: not valid UTF-8"):
        read_parallel(src, tgt)


# --- sources: local, mirror, download ---------------------------------------------------------


@pytest.fixture
def fake_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Register corpus `fake` whose `train` split has a public source served from `remote/`."""
    remote_dir = tmp_path / "remote"
    files = {
        lang: _write(remote_dir / f"train.{lang}.gz", _sentences(words, 50, seed), gz=True)
        for lang, words, seed in [("en", EN_WORDS, 1), ("de", DE_WORDS, 2)]
    }
    hashes = {lang: _sha(path) for lang, path in files.items()}
    remote = RemoteSplit(mirror="fake/train.{lang}.gz", sha256=hashes, url="http://unused/{lang}")
    corpus = Corpus("fake", ("en", "de"), {"train": remote})
    monkeypatch.setitem(CORPORA, "fake", corpus)
    return {"dir": remote_dir, "files": files, "hashes": hashes, "corpus": corpus}


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """Serve `tmp_path/www` on 127.0.0.1; yield (base URL, folder, requested paths)."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            requests.append(self.path)

    handler = functools.partial(Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_local_plain_then_gz(corpus_dir: Path) -> None:
    plain = resolve_file("custom", "train", "en", local_dir=corpus_dir)
    assert plain.path == corpus_dir / "train.en" and plain.origin == "local"
    gz = resolve_file("custom", "dev", "de", source="local", local_dir=corpus_dir)
    assert gz.path == corpus_dir / "dev.de.gz" and gz.sha256 == _sha(gz.path)
    with pytest.raises(DataError, match=r"nothere\.en: file not found"):
        resolve_file("custom", "nothere", "en", local_dir=corpus_dir)
    with pytest.raises(ConfigError, match="needs local_dir"):
        resolve_file("custom", "train", "en", source="local")


def test_mirror_errors_and_checksum(
    fake_corpus: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DataError, match=r"\$NASFLOW_MIRROR"):
        resolve_file("fake", "train", "en", source="mirror")
    mirror = tmp_path / "mirror"
    monkeypatch.setenv("NASFLOW_MIRROR", str(mirror))
    with pytest.raises(DataError, match=rf"{mirror}/fake/train\.en\.gz: file not found"):
        resolve_file("fake", "train", "en", source="mirror")
    (mirror / "fake").mkdir(parents=True)
    (mirror / "fake/train.en.gz").write_bytes(fake_corpus["files"]["en"].read_bytes())
    resolved = resolve_file("fake", "train", "en")  # auto picks the mirror
    assert resolved.origin == "mirror" and resolved.sha256 == fake_corpus["hashes"]["en"]
    bad = _write(mirror / "fake/train.de.gz", ["tampered"], gz=True)
    with pytest.raises(DataError) as info:
        resolve_file("fake", "train", "de", source="mirror")
    message = str(info.value)
    assert str(bad) in message and fake_corpus["hashes"]["de"] in message and _sha(bad) in message


def test_download_verified_cached_and_reused(
    fake_corpus: dict, http_root: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    base, root, requests = http_root
    for path in fake_corpus["files"].values():
        (root / path.name).write_bytes(path.read_bytes())
    cache = tmp_path / "cache"
    template = base + "/{split}.{lang}.gz"
    first = resolve_file("fake", "train", "en", cache_dir=cache, url_template=template)
    assert first.path == cache / "fake/train.en.gz" and first.origin == "download"
    assert _sha(first.path) == fake_corpus["hashes"]["en"]
    again = resolve_file("fake", "train", "en", cache_dir=cache, url_template=template)
    assert again.path == first.path and requests == ["/train.en.gz"]
    assert sorted(p.name for p in first.path.parent.iterdir()) == ["train.en.gz"]


def test_bad_download_leaves_nothing(
    fake_corpus: dict, http_root: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    base, root, _ = http_root
    _write(root / "train.de.gz", ["not what the registry expects"], gz=True)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        resolve_file("fake", "train", "de", cache_dir=cache, url_template=base + "/{name}")
    message = str(info.value)
    assert "sha256 mismatch" in message and fake_corpus["hashes"]["de"] in message
    assert _sha(root / "train.de.gz") in message
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    with pytest.raises(DataError, match="download failed"):
        download_url(base + "/missing.gz", cache / "x.gz", "0" * 64, timeout=5)
    assert not (cache / "x.gz").exists() and not (cache / "x.gz.part").exists()


# --- prepare --------------------------------------------------------------------------------


def test_prepare_round_trip_and_manifest(corpus_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = _prepare(corpus_dir, out)
    expected = {"spm.model", "spm.vocab", "manifest.json"} | {
        f"{role}.{ext}" for role in SPLITS for ext in ("en", "de", "npz")
    }
    assert {p.name for p in out.iterdir()} == expected  # no temporary files left
    processor = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
    assert [processor.id_to_piece(i) for i in range(4)] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert load_vocab_size(out) == processor.get_piece_size() == VOCAB
    for role, split in SPLITS.items():
        suffix = "" if split == "train" else ".gz"
        source = read_parallel(
            corpus_dir / f"{split}.en{suffix}", corpus_dir / f"{split}.de{suffix}"
        )
        assert (out / f"{role}.en").read_text(encoding="utf-8").splitlines() == source[0]
        data = load_split(out, role)
        with np.load(out / f"{role}.npz") as archive:
            assert archive["src"].dtype == np.int32 and archive["src_offsets"].dtype == np.int64
        assert len(data) == len(source[0]) == manifest["splits"][role]["lines"]
        decoded = [processor.decode(data[i][0].tolist()) for i in range(len(data))]
        assert decoded == source[0]
        assert processor.decode(data[-1][1].tolist()) == source[1][-1]
        entry = manifest["splits"][role]
        assert entry["source"]["tokens"] == len(data.src)
        assert entry["target"]["sha256"] == _sha(Path(entry["target"]["path"]))
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest and on_disk["spm"]["model_type"] == "bpe"
    assert on_disk["outputs"]["train.npz"] == _sha(out / "train.npz")


def test_prepare_is_deterministic(corpus_dir: Path, tmp_path: Path) -> None:
    _prepare(corpus_dir, tmp_path / "one")
    _prepare(corpus_dir, tmp_path / "two")
    for name in ("spm.model", "train.npz", "test.npz"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_chunked_encoding_matches_one_batch(corpus_dir: Path, tmp_path: Path) -> None:
    _prepare(corpus_dir, tmp_path / "out", splits={"train": "train"})
    processor = spm.SentencePieceProcessor(model_file=str(tmp_path / "out" / "spm.model"))
    lines = (tmp_path / "out" / "train.de").read_text(encoding="utf-8").splitlines()
    whole = encode_lines(processor, lines, threads=2)
    chunked = encode_lines(processor, lines, chunk_size=7)
    assert all(np.array_equal(a, b) for a, b in zip(whole, chunked, strict=True))
    assert whole[1][-1] == len(whole[0]) and len(whole[1]) == len(lines) + 1


def test_vocab_too_large_names_key(corpus_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"vocab_size: 5000 is too large .*train\.en"):
        _prepare(corpus_dir, out, vocab_size=5000)
    assert not (out / "manifest.json").exists()


def test_inputs_checked_before_work(corpus_dir: Path, tmp_path: Path) -> None:
    _write(corpus_dir / "test.de.gz", ["only one line"], gz=True)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"test\.en\.gz has 25 lines.*test\.de\.gz has 1 lines"):
        _prepare(corpus_dir, out)
    assert not out.exists()


def test_prepare_from_download(
    fake_corpus: dict, http_root: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    base, root, _ = http_root
    for path in fake_corpus["files"].values():
        (root / path.name).write_bytes(path.read_bytes())
    manifest = prepare_corpus(
        corpus="fake",
        source_lang="de",
        target_lang="en",
        splits={"train": "train"},
        out_dir=tmp_path / "out",
        source="download",
        cache_dir=tmp_path / "cache",
        vocab_size=50,
        url_template=base + "/{name}",
    )
    entry = manifest["splits"]["train"]
    assert entry["source"]["origin"] == "download" and entry["lines"] == 50
    assert entry["source"]["sha256"] == fake_corpus["hashes"]["de"]


def test_option_errors(corpus_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'train' split is required"):
        _prepare(corpus_dir, tmp_path / "o", splits={"valid": "dev"})
    with pytest.raises(ConfigError, match="model_type"):
        _prepare(corpus_dir, tmp_path / "o", model_type="nope")
    with pytest.raises(ConfigError, match="unknown source"):
        _prepare(corpus_dir, tmp_path / "o", source="ftp")
    with pytest.raises(DataError, match=r"manifest\.json: file not found"):
        load_vocab_size(tmp_path / "o")


# --- CLI ------------------------------------------------------------------------------------


def _cli_args(corpus_dir: Path, out: Path) -> list[str]:
    return [
        "data", "prepare", "--corpus", "custom", "--source-lang", "en", "--target-lang", "de",
        "--train", "train", "--valid", "dev", "--test", "test", "--vocab-size", str(VOCAB),
        "--local-dir", str(corpus_dir), "--out", str(out),
    ]  # fmt: skip


def _stub_missing_clis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand in for other packages' CLI modules that are not written yet (no subcommands)."""
    for name in ("nasflow.config.resolve", "nasflow.space.hat", "nasflow.cli.predictors"):
        try:
            importlib.import_module(name)
        except ImportError:
            monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(register=lambda _s: None))


def test_cli_main(
    corpus_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _stub_missing_clis(monkeypatch)
    from nasflow.cli import main

    assert main(_cli_args(corpus_dir, tmp_path / "out")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("train: custom train en-de 300 lines")
    assert main([*_cli_args(corpus_dir, tmp_path / "o2"), "--vocab-size", "5000"]) == 2
    assert "vocab_size: 5000 is too large" in capsys.readouterr().err


def test_cli_register(corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    data_cli.register(parser.add_subparsers())
    args = parser.parse_args(_cli_args(corpus_dir, tmp_path / "out"))
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["train", "valid", "test"]
    assert "25 lines" in lines[2] and "(local)" in lines[2]
    assert load_split(tmp_path / "out", "valid").src_offsets.shape == (21,)
