"""The WMT download recipe on tiny fake statmt.org archives served from 127.0.0.1 (no network)."""

from __future__ import annotations

import argparse
import copy
import functools
import gzip
import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nasflow.cli import data as data_cli
from nasflow.config.resolve import validate_config
from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import read_lines
from nasflow.data import read_parallel, resolve_file
from nasflow.data.recipes import (
    CleanSettings,
    fetch_wmt,
    find_member,
    output_files,
    reject_reason,
)

Lines = list[str | bytes]


def _text(lines: Lines) -> bytes:
    return b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        folder = tarfile.TarInfo("training")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _pair_members(stem: str, en: Lines, other: Lines, lang: str) -> dict[str, bytes]:
    return {f"{stem}.en": _text(en), f"{stem}.{lang}": _text(other)}


@dataclass
class Server:
    """A folder served on 127.0.0.1; `lying` paths get half their bytes under the full length."""

    base: str
    root: Path
    requests: list[str] = field(default_factory=list)
    lying: set[str] = field(default_factory=set)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    state = Server("", root)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path in state.lying:
                data = (root / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                return
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}/mirror"
    root.joinpath("mirror").mkdir()
    state.root = root / "mirror"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# --- WMT'14 En-De: europarl v7, commoncrawl, news-commentary v9 ------------------------------

LONG_EN, LONG_DE = " ".join(["w"] * 251), " ".join(["v"] * 251)
EUROPARL_EN: Lines = ["Hello world", "", "  spaced \t  out  ", "a b c d", "Hello world"]
EUROPARL_DE: Lines = ["Hallo Welt", "Leer", " weit  weg ", "x", "Hallo Welt"]
COMMONCRAWL_EN: Lines = [LONG_EN, "one two three", "x" * 1001]
COMMONCRAWL_DE: Lines = [LONG_DE, "eins zwei drei", "y" * 1001]
NC_EN: Lines = ["good morning", "Hello  world", b"\xff\xfe bad", "a b c"]
NC_DE: Lines = ["guten Morgen", "Hallo Welt", "ok", "x y"]
CLEAN_EN = ["Hello world", "spaced out", "one two three", "good morning", "a b c"]
CLEAN_DE = ["Hallo Welt", "weit weg", "eins zwei drei", "guten Morgen", "x y"]
EN_DE_FILES = (
    "training-parallel-europarl-v7.tgz",
    "training-parallel-commoncrawl.tgz",
    "training-parallel-nc-v9.tgz",
)


def _en_de_archives(root: Path, europarl: dict[str, bytes] | None = None) -> None:
    europarl = europarl or {
        **_pair_members("training/europarl-v7.de-en", EUROPARL_EN, EUROPARL_DE, "de"),
        "training/europarl-v7.fr-en.fr": _text(["decoy"]),
    }
    _tar(root / EN_DE_FILES[0], europarl)
    members = _pair_members("commoncrawl.de-en", COMMONCRAWL_EN, COMMONCRAWL_DE, "de")
    _tar(root / EN_DE_FILES[1], members)
    # no `training/` folder: found by file name (the tolerant lookup)
    _tar(root / EN_DE_FILES[2], _pair_members("news-commentary-v9.de-en", NC_EN, NC_DE, "de"))


def _fetch(server: Server, tmp_path: Path, corpus: str = "wmt14_en_de", **kwargs) -> dict:
    return fetch_wmt(
        corpus, tmp_path / "out", cache_dir=tmp_path / "cache", url_base=server.base, **kwargs
    )


def test_en_de_is_cleaned_like_moses_and_deduplicated(server: Server, tmp_path: Path) -> None:
    _en_de_archives(server.root)
    manifest = _fetch(server, tmp_path)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["recipe.json", "train.de.gz", "train.en.gz"]
    assert read_lines(out / "train.en.gz") == CLEAN_EN
    assert read_lines(out / "train.de.gz") == CLEAN_DE
    # what `nasflow data prepare` reads from data.local_dir
    en, de = (resolve_file("wmt14_en_de", "train", lang, local_dir=out) for lang in ("en", "de"))
    assert (en.path, en.origin) == (out / "train.en.gz", "local")
    assert read_parallel(en.path, de.path) == (CLEAN_EN, CLEAN_DE)
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe == json.loads(json.dumps(manifest))
    train = recipe["splits"]["train"]
    assert train["counts"] == {
        "input": 12,
        "invalid_utf8": 1,
        "empty": 1,
        "too_long": 2,
        "ratio": 1,
        "duplicate": 2,
        "output": 5,
    }
    assert [f["remaining"] for f in train["filters"]] == [11, 10, 8, 7, 5]
    assert [(s["name"], s["pairs"]) for s in recipe["sources"]] == [
        ("europarl-v7", 5),
        ("commoncrawl", 3),
        ("news-commentary-v9", 4),
    ]
    assert recipe["sources"][2]["taken"] == {
        "en": "news-commentary-v9.de-en.en",
        "de": "news-commentary-v9.de-en.de",
    }
    archives = {a["name"]: a for a in recipe["archives"]}
    for name in EN_DE_FILES:
        served = (server.root / name).read_bytes()
        assert archives[name]["sha256"] == hashlib.sha256(served).hexdigest()
        assert archives[name]["url"] == f"{server.base}/{name}"
        assert archives[name]["verified"] is False
    assert archives[EN_DE_FILES[0]]["registry_url"].startswith("http://statmt.org/wmt13/")
    assert recipe["settings"]["holdout_every"] is None and recipe["settings"]["dedupe"] is True
    for name in ("train.en.gz", "train.de.gz"):
        digest = hashlib.sha256((out / name).read_bytes()).hexdigest()
        assert recipe["files"][name] == {"lines": 5, "sha256": digest}


def test_cli_options_and_the_archive_cache(
    server: Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _en_de_archives(server.root)
    _fetch(server, tmp_path)
    requested = list(server.requests)
    assert len(requested) == 3
    parser = argparse.ArgumentParser()
    data_cli.register(parser.add_subparsers())
    out = tmp_path / "out2"
    cache = str(tmp_path / "cache")
    command = "data fetch-wmt --corpus wmt14_en_de --max-tokens 251 --ratio 4 --no-dedupe"
    args = parser.parse_args(
        [*command.split(), "--out", str(out), "--cache", cache, "--url-base", server.base]
    )
    with caplog.at_level("INFO", logger="nasflow"):
        assert args.func(args) == 0
    assert server.requests == requested  # every archive came from the cache
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2:] == [
        "train: 9 of 12 pairs kept (invalid_utf8 1, empty 1, too_long 1, ratio 0, duplicate 0)",
        f"wmt14_en_de -> {out}",
    ]
    # progress goes to the log, the result to stdout
    assert caplog.messages[0].startswith(f"archive {server.base}/training-parallel-europarl-v7.tgz")
    assert read_lines(out / "train.en.gz") == [
        "Hello world",
        "spaced out",
        "a b c d",
        "Hello world",
        LONG_EN,
        "one two three",
        "good morning",
        "Hello world",
        "a b c",
    ]
    settings = json.loads((out / "recipe.json").read_text())["settings"]
    assert (settings["max_tokens"], settings["ratio"], settings["dedupe"]) == (251, 4.0, False)


def test_en_fr_holds_out_every_nth_pair_and_reads_gz_members(
    server: Server, tmp_path: Path
) -> None:
    en = [f"pair {i}" for i in range(1, 13)]
    fr = [f"paire {i}" for i in range(1, 13)]
    en[7] = ""  # pair 8: a held-out pair, cleaned too
    en[9], fr[9] = en[0], fr[0]  # pair 10 repeats pair 1
    stems = [
        ("training-parallel-europarl-v7.tgz", "training/europarl-v7.fr-en", 0, 3),
        ("training-parallel-commoncrawl.tgz", "commoncrawl.fr-en", 3, 5),
        ("training-parallel-un.tgz", "un/undoc.2000.fr-en", 5, 7),
        ("training-parallel-nc-v9.tgz", "training/news-commentary-v9.fr-en", 7, 9),
    ]
    for name, stem, start, end in stems:
        _tar(server.root / name, _pair_members(stem, en[start:end], fr[start:end], "fr"))
    giga = {
        f"giga-fren.release2.fixed.{lang}.gz": gzip.compress(_text(lines[9:]))
        for lang, lines in (("en", en), ("fr", fr))
    }
    _tar(server.root / "training-giga-fren.tar", giga, mode="w")
    recipe = _fetch(server, tmp_path, "wmt14_en_fr", holdout_every=4)
    out = tmp_path / "out"
    assert read_lines(out / "valid.en.gz") == ["pair 4", "pair 12"]
    assert read_lines(out / "valid.fr.gz") == ["paire 4", "paire 12"]
    train = [f"pair {i}" for i in (1, 2, 3, 5, 6, 7, 9, 11)]
    assert read_lines(out / "train.en.gz") == train
    assert read_lines(out / "train.fr.gz") == [line.replace("pair", "paire") for line in train]
    counts = {name: split["counts"] for name, split in recipe["splits"].items()}
    assert (counts["train"]["input"], counts["train"]["duplicate"]) == (9, 1)
    assert (counts["valid"]["input"], counts["valid"]["empty"], counts["valid"]["output"]) == (
        3,
        1,
        2,
    )
    assert [s["pairs"] for s in recipe["sources"]] == [3, 2, 2, 2, 3]
    assert recipe["sources"][4]["taken"]["fr"] == "giga-fren.release2.fixed.fr.gz"
    assert recipe["settings"]["holdout_every"] == 4


def test_wmt19_reads_tsv_zip_and_newstest_sgm(server: Server, tmp_path: Path) -> None:
    root = server.root
    tsv = _text(["Hallo\tHello", "Nur deutsch", "Guten Tag\tGood day"])
    (root / "europarl-v9.de-en.tsv.gz").write_bytes(gzip.compress(tsv))
    members = _pair_members("commoncrawl.de-en", ["cat"], ["Katze"], "de")
    _tar(root / "training-parallel-commoncrawl.tgz", members)
    nc = _text(["Welt\tworld", "", "Hallo\tHello"])
    (root / "news-commentary-v14.de-en.tsv.gz").write_bytes(gzip.compress(nc))
    _zip(root / "rapid2019.de-en.zip", _pair_members("rapid2019.de-en", ["house"], ["Haus"], "de"))
    sgm = '<srcset setid="x">\n<doc docid="a">\n<seg id="1">{}</seg>\n<seg id="2">{}</seg>\n'
    dev = {
        "dev/newstest2016-ende-src.en.sgm": _text([sgm.format("old", "old")]),
        "dev/newstest2017-ende-src.en.sgm": _text([sgm.format("A test .", " Second line ")]),
        "dev/newstest2017-ende-ref.de.sgm": _text([sgm.format("Ein Test .", "Zweite Zeile")]),
    }
    _tar(root / "dev.tgz", dev)
    recipe = _fetch(server, tmp_path, "wmt19_en_de")
    out = tmp_path / "out"
    assert read_lines(out / "valid.en.gz") == ["A test .", "Second line"]
    assert read_lines(out / "valid.de.gz") == ["Ein Test .", "Zweite Zeile"]
    assert read_lines(out / "train.en.gz") == ["Hello", "Good day", "cat", "world", "house"]
    assert read_lines(out / "train.de.gz") == ["Hallo", "Guten Tag", "Katze", "Welt", "Haus"]
    assert sorted(server.requests) == sorted(
        f"/mirror/{name}"
        for name in (
            "dev.tgz",
            "europarl-v9.de-en.tsv.gz",
            "training-parallel-commoncrawl.tgz",
            "news-commentary-v14.de-en.tsv.gz",
            "rapid2019.de-en.zip",
        )
    )  # the optional ParaCrawl and Wiki Titles are not downloaded
    assert recipe["splits"]["train"]["counts"]["empty"] == 2
    assert recipe["splits"]["train"]["counts"]["duplicate"] == 1
    assert recipe["settings"]["valid"] == "newstest2017"
    assert output_files("wmt19_en_de", "d")["valid_de"] == "d/valid.de.gz"


def _assert_nothing_written(tmp_path: Path) -> None:
    assert list((tmp_path / "out").iterdir()) == []
    assert not list((tmp_path / "cache").glob("*.part"))


def test_a_missing_archive_writes_nothing(server: Server, tmp_path: Path) -> None:
    _en_de_archives(server.root)
    (server.root / EN_DE_FILES[2]).unlink()
    url = f"{server.base}/{EN_DE_FILES[2]}"
    with pytest.raises(DataError, match=rf"^{url}: download failed \(HTTP Error 404"):
        _fetch(server, tmp_path)
    _assert_nothing_written(tmp_path)


def test_a_truncated_archive_writes_nothing_and_leaves_the_cache(
    server: Server, tmp_path: Path
) -> None:
    _en_de_archives(server.root)
    path = server.root / EN_DE_FILES[1]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    url = f"{server.base}/{EN_DE_FILES[1]}"
    with pytest.raises(DataError, match=rf"from {url}: corrupt or truncated archive .*cache"):
        _fetch(server, tmp_path)  # europarl was already cleaned into the work folder
    _assert_nothing_written(tmp_path)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [EN_DE_FILES[0], EN_DE_FILES[2]]
    )


def test_a_short_download_is_refused(server: Server, tmp_path: Path) -> None:
    _en_de_archives(server.root)
    server.lying.add(f"/mirror/{EN_DE_FILES[2]}")
    url = f"{server.base}/{EN_DE_FILES[2]}"
    with pytest.raises(DataError, match=rf"^{url}: download incomplete \(\d+ of \d+ bytes"):
        _fetch(server, tmp_path)
    _assert_nothing_written(tmp_path)
    assert not (tmp_path / "cache" / EN_DE_FILES[2]).exists()


def test_a_missing_member_lists_the_archive(server: Server, tmp_path: Path) -> None:
    members = {"training/europarl-v7.de-en.en": _text(["x"]), "README": b"r\n"}
    _en_de_archives(server.root, europarl=members)
    url = f"{server.base}/{EN_DE_FILES[0]}"
    message = (
        rf"archive {EN_DE_FILES[0]} from {url}: no member 'training/europarl-v7.de-en.de' "
        r"\(nor \*/europarl-v7.de-en.de\); it holds: training/europarl-v7.de-en.en, README$"
    )
    with pytest.raises(DataError, match=message):
        _fetch(server, tmp_path)
    _assert_nothing_written(tmp_path)


def test_misaligned_members_are_named(server: Server, tmp_path: Path) -> None:
    members = _pair_members("training/europarl-v7.de-en", ["a", "b"], ["a"], "de")
    _en_de_archives(server.root, europarl=members)
    with pytest.raises(DataError, match=r"europarl-v7.de-en.de ends after line 1\)$"):
        _fetch(server, tmp_path)
    _assert_nothing_written(tmp_path)


def test_bad_options_fail_before_any_download(server: Server, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "train.en").write_text("mine\n")
    with pytest.raises(DataError, match=r"train.en exists and would be read instead"):
        _fetch(server, tmp_path)
    with pytest.raises(ConfigError, match="wmt14_en_de holds out no valid split"):
        _fetch(server, tmp_path, holdout_every=10)
    with pytest.raises(ConfigError, match="paracrawl-v3 is not an optional source of wmt14_en_de"):
        _fetch(server, tmp_path, include=["paracrawl-v3"])
    with pytest.raises(ConfigError, match="no download recipe"):
        _fetch(server, tmp_path, corpus="multi30k")
    assert server.requests == []


def test_cleaning_rules_and_member_lookup() -> None:
    settings = CleanSettings(max_tokens=3, ratio=2.0)
    assert reject_reason("a b", "c d e f", settings) == "too_long"
    assert reject_reason("a", "c d", settings) is None
    assert reject_reason("a", "c d e", settings) == "ratio"
    assert reject_reason("", "c", settings) == "empty"
    names = ["x/a.en", "y/a.en", "b.en"]
    assert find_member(names, "training/b.en", "t") == "b.en"
    with pytest.raises(DataError, match=r"t: member 'a.en' is ambiguous \(x/a.en, y/a.en\)"):
        find_member(names, "a.en", "t")


MINIMAL = {
    "experiment": "t",
    "space": "demo",
    "data": {"corpus": "wmt14_en_de", "source_lang": "en", "target_lang": "de"},
}


@pytest.mark.parametrize("corpus", ["multi30k", "custom"])
def test_config_refuses_fetch_without_a_recipe(corpus: str) -> None:
    config = copy.deepcopy(MINIMAL)
    config["data"].update(corpus=corpus, fetch=True, local_dir="corpus")
    with pytest.raises(ConfigError, match=rf"config key data.fetch: corpus '{corpus}' has no"):
        validate_config(config)


def test_config_fetch_needs_local_dir() -> None:
    config = copy.deepcopy(MINIMAL)
    config["data"]["fetch"] = True
    with pytest.raises(ConfigError, match=r"data\.local_dir is required when data\.fetch is true"):
        validate_config(copy.deepcopy(config))
    config["data"]["local_dir"] = "resources/wmt14_en_de"
    assert validate_config(config)["data"]["fetch"] is True
    assert validate_config(copy.deepcopy(MINIMAL))["data"]["fetch"] is False
