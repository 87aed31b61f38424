"""Corpus registry and resolution of a corpus split to verified files on disk.

A split comes from one of four places (`source`):

- `local`: `{local_dir}/{split}.{lang}` or `{split}.{lang}.gz`, used as is;
- `mirror`: the read-only folder named by `$NASFLOW_MIRROR`, checked against the registry's sha256;
- `download`: fetched into `{cache_dir}/{corpus}/` (by URL and sha256-checked, or through
  sacrebleu's own downloader, which checks its md5), a cached file being reused;
- `auto`: per file, `local` when `local_dir` holds it (or the split has no public source), else
  `mirror` when `$NASFLOW_MIRROR` holds it, else `download`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import atomic_path

MIRROR_ENV = "NASFLOW_MIRROR"
SOURCES = ("auto", "local", "mirror", "download")
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20

MULTI30K_URL = (
    "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{split}.{lang}.gz"
)


@dataclass(frozen=True)
class RemoteSplit:
    """A split with a public source: its mirror file per language and how to download it.

    `mirror` is a path template below the mirror root with `{lang}`; `sha256` maps a language to
    the hash of that file. Exactly one of `url` (template with `{split}` and `{lang}`; the file
    is byte-identical to the mirror's) or `sacrebleu` (test set name, e.g. `wmt14/full`, and
    `langpair`) says how to download it.
    """

    mirror: str
    sha256: Mapping[str, str]
    url: str | None = None
    sacrebleu: str | None = None
    langpair: str | None = None


@dataclass(frozen=True)
class Corpus:
    """A registered corpus: its languages and, per split name, a public source or None (local)."""

    name: str
    languages: tuple[str, ...]
    splits: Mapping[str, RemoteSplit | None] = field(default_factory=dict)
    any_split: bool = False  # `custom`: every split name is accepted and read from local_dir


@dataclass(frozen=True)
class ResolvedFile:
    """One input file: where it was found (`origin`), its path and its sha256."""

    path: Path
    origin: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly form for manifests."""
        return {"path": str(self.path), "origin": self.origin, "sha256": self.sha256}


_MULTI30K_SHA256 = {
    "test_2016_flickr": {
        "de": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
        "en": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
        "fr": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    },
    "test_2017_flickr": {
        "de": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
        "en": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
        "fr": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
    },
    "train": {
        "de": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
        "en": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
        "fr": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    },
    "val": {
        "de": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
        "en": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
        "fr": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    },
}

_NEWSTEST_SHA256 = {
    ("en-de", "newstest2013"): {
        "de": "f3b87352620b54bc2bb2e314ee11595af4af957389d254303708b701a0893b5d",
        "en": "162df22a4c495e32b7039463d27085e20ffff94b816f57a96ede3b1d92ddfa3e",
    },
    ("en-de", "newstest2014"): {
        "de": "20b141a4dfe4c78a991f9999174f8f378565ea479ebaef056a68b16d23b74702",
        "en": "c9d36aa995abde6b41abebef6411be4f1ecc2f520f04dd6e382a232c34b36ff6",
    },
    ("en-de", "newstest2019"): {
        "de": "7be839b19f5d7a45eee0e7458db5f08a6492f9df60d5db0f8dce602005de17f2",
        "en": "6ae5fa34a6512f2776d6ea7b8d32cead3f11d7878cfd8e4437644e86b4f574dc",
    },
    ("en-fr", "newstest2014"): {
        "en": "639cabed16968950ba756e1306c3d5a25415cd4ec86dfaa13adf4aebf8f1fa54",
        "fr": "5da04d63cf9dee55a3a3d23ff82ddd2e206ccff25b4449251ee4e632d823010f",
    },
}

_SACREBLEU_SETS = {"newstest2013": "wmt13", "newstest2014": "wmt14/full", "newstest2019": "wmt19"}


def _newstest(pair: str, name: str) -> RemoteSplit:
    return RemoteSplit(
        mirror=f"newstest/{pair}.{name}.{{lang}}.gz",
        sha256=_NEWSTEST_SHA256[(pair, name)],
        sacrebleu=_SACREBLEU_SETS[name],
        langpair=pair,
    )


def _multi30k(split: str) -> RemoteSplit:
    return RemoteSplit(
        mirror=f"multi30k/{split}.{{lang}}.gz", sha256=_MULTI30K_SHA256[split], url=MULTI30K_URL
    )


CORPORA: dict[str, Corpus] = {
    "multi30k": Corpus(
        "multi30k", ("en", "de", "fr"), {split: _multi30k(split) for split in _MULTI30K_SHA256}
    ),
    "wmt14_en_de": Corpus(
        "wmt14_en_de",
        ("en", "de"),
        {
            "train": None,
            "newstest2013": _newstest("en-de", "newstest2013"),
            "newstest2014": _newstest("en-de", "newstest2014"),
        },
    ),
    "wmt14_en_fr": Corpus(
        "wmt14_en_fr",
        ("en", "fr"),
        {"train": None, "valid": None, "newstest2014": _newstest("en-fr", "newstest2014")},
    ),
    "wmt19_en_de": Corpus(
        "wmt19_en_de",
        ("en", "de"),
        {"train": None, "valid": None, "newstest2019": _newstest("en-de", "newstest2019")},
    ),
    "custom": Corpus("custom", (), any_split=True),
}


def get_corpus(name: str) -> Corpus:
    """Look up a registered corpus by name."""
    try:
        return CORPORA[name]
    except KeyError:
        known = ", ".join(sorted(CORPORA))
        raise ConfigError(f"corpus: unknown corpus {name!r} (known: {known})") from None


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> str:
    """Return the sha256 of `path`, raising `DataError` when it is not `expected`."""
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(f"{path}: sha256 mismatch (expected {expected}, got {actual})")
    return actual


def _check_split(corpus: Corpus, split: str, lang: str) -> RemoteSplit | None:
    """Validate `split`/`lang` for `corpus`; return its public source (None = local only)."""
    if corpus.languages and lang not in corpus.languages:
        raise ConfigError(
            f"language {lang!r} is not in corpus {corpus.name!r} "
            f"(languages: {', '.join(corpus.languages)})"
        )
    if corpus.any_split:
        return None
    if split not in corpus.splits:
        known = ", ".join(corpus.splits)
        raise ConfigError(f"corpus {corpus.name!r} has no split {split!r} (splits: {known})")
    return corpus.splits[split]


def local_file(local_dir: str | Path, split: str, lang: str) -> Path:
    """`{local_dir}/{split}.{lang}` or, failing that, `{split}.{lang}.gz`."""
    plain = Path(local_dir) / f"{split}.{lang}"
    gz = plain.with_name(plain.name + ".gz")
    if plain.is_file():
        return plain
    if gz.is_file():
        return gz
    raise DataError(f"{plain}: file not found (nor {gz.name})")


def mirror_root() -> Path | None:
    """The mirror folder from `$NASFLOW_MIRROR`, or None when unset."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    return Path(value) if value else None


def _mirror_file(remote: RemoteSplit, lang: str) -> Path:
    root = mirror_root()
    if root is None:
        raise DataError(f"source 'mirror' needs ${MIRROR_ENV} set to the shared data folder")
    path = root / remote.mirror.format(lang=lang)
    if not path.is_file():
        raise DataError(f"{path}: file not found in the mirror (${MIRROR_ENV}={root})")
    return path


def download_url(
    url: str, dest: str | Path, sha256: str, timeout: float = DOWNLOAD_TIMEOUT_S
) -> Path:
    """Download `url` to `dest` unless a cached `dest` already has the expected `sha256`.

    The bytes go to `dest.part`, renamed onto `dest` only once the checksum matches; on any
    failure the partial file is removed and a `DataError` names the URL or file and both hashes.
    """
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        actual = _fetch(url, part, timeout)
        if actual != sha256:
            raise DataError(
                f"{url}: sha256 mismatch, download to {dest} discarded "
                f"(expected {sha256}, got {actual})"
            )
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def download_cached(
    url: str, dest: str | Path, sha256: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S
) -> tuple[Path, str]:
    """Download `url` to `dest` once; return the path and the sha256 of its bytes.

    With `sha256` this is `download_url`. With `sha256=None` the bytes are not verified: a cached
    `dest` is reused as is (downloads are renamed into place only once fully received, and a body
    shorter than its Content-Length is refused) and the caller records the computed hash.
    """
    if sha256 is not None:
        return download_url(url, dest, sha256, timeout), sha256
    dest = Path(dest)
    if dest.is_file():
        return dest, sha256_file(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        actual = _fetch(url, part, timeout, check_length=True)
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest, actual


def _fetch(url: str, part: Path, timeout: float, check_length: bool = False) -> str:
    """Stream `url` into `part`; return the sha256 of the bytes.

    `check_length`: refuse a body shorter than the response's Content-Length (urllib itself
    returns a connection closed early as a normal end of data).
    """
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
            expected = response.headers.get("Content-Length")
            if check_length and expected is not None and received != int(expected):
                raise DataError(
                    f"{url}: download incomplete ({received} of {expected} bytes received)"
                )
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        raise DataError(f"{url}: download failed ({error})") from None
    return digest.hexdigest()


def _download_sacrebleu(remote: RemoteSplit, lang: str, dest: Path) -> Path:
    """Fetch a WMT test set side through sacrebleu (which checks its md5); copy it to `dest`."""
    if dest.is_file():
        return dest
    assert remote.sacrebleu is not None and remote.langpair is not None
    from sacrebleu.dataset import DATASETS

    side = remote.langpair.split("-").index(lang)
    try:
        files = DATASETS[remote.sacrebleu].get_files(remote.langpair)
    except (Exception, SystemExit) as error:  # sacrebleu exits on md5 mismatch
        raise DataError(
            f"sacrebleu test set {remote.sacrebleu} ({remote.langpair}): download failed ({error})"
        ) from None
    with atomic_path(dest) as tmp:
        shutil.copyfile(files[side], tmp)
    return dest


def _download(
    corpus: Corpus,
    split: str,
    remote: RemoteSplit,
    lang: str,
    cache_dir: str | Path,
    url_template: str | None,
) -> ResolvedFile:
    name = Path(remote.mirror.format(lang=lang)).name
    dest = Path(cache_dir) / corpus.name / name
    template = url_template or remote.url
    if template is None:
        path = _download_sacrebleu(remote, lang, dest.with_suffix(""))
        return ResolvedFile(path, "download", sha256_file(path))
    try:
        url = template.format(
            corpus=corpus.name,
            split=split,
            lang=lang,
            name=name,
            path=remote.mirror.format(lang=lang),
        )
    except (KeyError, IndexError) as error:
        raise ConfigError(f"url_template {template!r}: unknown field {error}") from None
    path = download_url(url, dest, remote.sha256[lang])
    return ResolvedFile(path, "download", remote.sha256[lang])


def resolve_file(
    corpus: str | Corpus,
    split: str,
    lang: str,
    *,
    source: str = "auto",
    local_dir: str | Path | None = None,
    cache_dir: str | Path = "resources/corpora",
    url_template: str | None = None,
) -> ResolvedFile:
    """Find (mirror/local) or fetch (download) one side of a split; verify it when hashes exist.

    `url_template` replaces the registry's URL for every split with a public source (fields:
    `{corpus}`, `{split}`, `{lang}`, `{name}` = mirror file name, `{path}` = mirror-relative
    path); what it serves must be byte-identical to the mirror files.
    """
    if source not in SOURCES:
        raise ConfigError(f"source: unknown source {source!r} (choose from {', '.join(SOURCES)})")
    spec = corpus if isinstance(corpus, Corpus) else get_corpus(corpus)
    remote = _check_split(spec, split, lang)
    if source == "local" and local_dir is None:
        raise ConfigError("source 'local' needs local_dir")
    if local_dir is not None and (
        source == "local"
        or (source == "auto" and (remote is None or _in_local(local_dir, split, lang)))
    ):
        path = local_file(local_dir, split, lang)
        return ResolvedFile(path, "local", sha256_file(path))
    if remote is None:
        raise DataError(
            f"corpus {spec.name!r} split {split!r} ({lang}) has no public source: pass local_dir "
            f"holding {split}.{lang} or {split}.{lang}.gz"
        )
    if source == "mirror" or (source == "auto" and _in_mirror(remote, lang)):
        path = _mirror_file(remote, lang)
        return ResolvedFile(path, "mirror", verify_sha256(path, remote.sha256[lang]))
    return _download(spec, split, remote, lang, cache_dir, url_template)


def _in_local(local_dir: str | Path, split: str, lang: str) -> bool:
    plain = Path(local_dir) / f"{split}.{lang}"
    return plain.is_file() or plain.with_name(plain.name + ".gz").is_file()


def _in_mirror(remote: RemoteSplit, lang: str) -> bool:
    root = mirror_root()
    return root is not None and (root / remote.mirror.format(lang=lang)).is_file()
