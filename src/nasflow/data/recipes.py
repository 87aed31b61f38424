"""Download and clean the WMT training corpora of the paper configs (`nasflow data fetch-wmt`).

`RECIPES` lists, per corpus, the public archives and the members taken from each, following
fairseq's `examples/translation/prepare-wmt14en2de.sh` (with `--icml17`, i.e. news-commentary
v9: the ~4.5M-pair WMT'14 En-De set HAT trains on) and `prepare-wmt14en2fr.sh`; WMT'19 En-De is
the subset of HAT's WMT'19 sources described below. `fetch_wmt` runs the recipe:

1. download every archive into a cache (streamed to `NAME.part`, renamed when complete; a cached
   archive is reused). No sha256 is known for the real archives (`Archive.sha256=None`): their
   bytes are not verified and the computed sha256 is recorded in `recipe.json` instead;
2. extract only the needed members (tar, tgz, zip; `.gz` members such as giga-fren's are
   decompressed, `.sgm` members reduced to their `<seg>` contents; a tab-separated `.tsv.gz`
   archive is read by column) and concatenate them per language, keeping lines aligned;
3. hold out every N-th pair of the concatenation as the valid split (fairseq's `NR % 1333 == 0`
   for WMT'14 En-Fr) or read a newstest set as the valid split (newstest2017 for WMT'19 En-De);
4. clean every pair as Moses' `clean-corpus-n.perl -ratio 1.5 ... 1 250` does in fairseq's
   scripts: whitespace collapsed and stripped, drop a pair when a side is empty, has more than
   250 tokens or a token longer than 1000 characters, or when the token-count ratio exceeds 1.5;
   also drop a pair whose bytes are not UTF-8 and, unless turned off, an exact duplicate of a
   pair already kept (in either split). fairseq counts tokens after Moses tokenisation and BPE;
   here they are whitespace tokens of the raw text, which SentencePiece later encodes;
5. write `{split}.{lang}.gz` into the output folder (temporary names in a work folder there,
   renamed only once every split is complete), then `recipe.json` (URLs, archive sha256s,
   members, pair counts before and after each filter, settings).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from nasflow import __version__
from nasflow.core.errors import ConfigError, DataError
from nasflow.core.io import write_json_atomic
from nasflow.data.corpora import download_cached, sha256_file

RECIPE_JSON = "recipe.json"
DEFAULT_CACHE = "resources/corpora/wmt"
DEFAULT_HOLDOUT_EVERY = 1333
FILTERS = ("invalid_utf8", "empty", "too_long", "ratio", "duplicate")
_CHUNK = 1 << 20
_LISTED_MEMBERS = 40
_SEG = re.compile(rb"<seg[^>]*>(.*)</seg>")
# Errors of a corrupt or truncated archive (not of the disk or of our registry).
_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)


@dataclass(frozen=True)
class Archive:
    """A downloadable file: its URL, its sha256 (None: not verified) and its cache file name."""

    url: str
    sha256: str | None = None
    name: str = ""  # cache file name; "" = the URL's file name

    @property
    def filename(self) -> str:
        """The last component of the URL (kept when `--url-base` replaces the prefix)."""
        return self.url.rsplit("/", 1)[-1]

    @property
    def cache_name(self) -> str:
        """File name in the download cache."""
        return self.name or self.filename


@dataclass(frozen=True)
class Source:
    """One parallel sub-corpus of an archive.

    Either `members` (language -> path of a line-aligned text file inside a tar/tgz/zip archive,
    looked up exactly, else by file name in any folder) or `columns` (language -> 0-based column
    of a tab-separated archive such as `*.tsv.gz`). `optional` sources are only taken when named.
    """

    name: str
    archive: Archive
    members: Mapping[str, str] = field(default_factory=dict)
    columns: Mapping[str, int] = field(default_factory=dict)
    optional: bool = False

    def __post_init__(self) -> None:
        if bool(self.members) == bool(self.columns):
            raise ValueError(f"source {self.name}: give either members or columns")


@dataclass(frozen=True)
class Recipe:
    """A corpus: its two languages, training sources and how its valid split is made."""

    corpus: str
    languages: tuple[str, str]
    train: tuple[Source, ...]
    valid: tuple[Source, ...] = ()  # a newstest set read as the valid split
    holdout: bool = False  # else: every N-th training pair is the valid split

    @property
    def splits(self) -> tuple[str, ...]:
        """Output splits: `train`, plus `valid` when the recipe makes one."""
        return ("train", "valid") if self.valid or self.holdout else ("train",)


@dataclass(frozen=True)
class CleanSettings:
    """Moses `clean-corpus-n.perl` limits as fairseq uses them, plus exact-duplicate removal."""

    max_tokens: int = 250
    ratio: float = 1.5
    max_word_chars: int = 1000
    dedupe: bool = True


def _files(name: str, archive: Archive, stem: str, languages: Sequence[str]) -> Source:
    """A source of two line-aligned members `{stem}.{lang}`."""
    return Source(name, archive, members={lang: f"{stem}.{lang}" for lang in languages})


# URLs and member paths as fairseq's (WMT'14) and HAT's (WMT'19) download scripts have them; they
# could not be fetched from the machine this was written on, hence the tolerant member lookup.
_STATMT = "http://statmt.org"
_EUROPARL_V7 = Archive(f"{_STATMT}/wmt13/training-parallel-europarl-v7.tgz")
_COMMONCRAWL = Archive(f"{_STATMT}/wmt13/training-parallel-commoncrawl.tgz")
_NC_V9 = Archive(f"{_STATMT}/wmt14/training-parallel-nc-v9.tgz")
_UN = Archive(f"{_STATMT}/wmt13/training-parallel-un.tgz")
_GIGA_FREN = Archive(f"{_STATMT}/wmt10/training-giga-fren.tar")
_EUROPARL_V9 = Archive("http://www.statmt.org/europarl/v9/training/europarl-v9.de-en.tsv.gz")
_NC_V14 = Archive(
    "http://data.statmt.org/news-commentary/v14/training/news-commentary-v14.de-en.tsv.gz"
)
_RAPID_2019 = Archive("https://s3-eu-west-1.amazonaws.com/tilde-model/rapid2019.de-en.zip")
_PARACRAWL_V3 = Archive(
    "https://s3.amazonaws.com/web-language-models/paracrawl/release3/en-de.bicleaner07.txt.gz"
)
_WIKITITLES_V1 = Archive("http://data.statmt.org/wikititles/v1/wikititles-v1.de-en.tsv.gz")
_WMT19_DEV = Archive("http://data.statmt.org/wmt19/translation-task/dev.tgz", name="wmt19-dev.tgz")
_DE, _FR = ("en", "de"), ("en", "fr")

RECIPES: dict[str, Recipe] = {
    "wmt14_en_de": Recipe(
        "wmt14_en_de",
        _DE,
        train=(
            _files("europarl-v7", _EUROPARL_V7, "training/europarl-v7.de-en", _DE),
            _files("commoncrawl", _COMMONCRAWL, "commoncrawl.de-en", _DE),
            _files("news-commentary-v9", _NC_V9, "training/news-commentary-v9.de-en", _DE),
        ),
    ),
    "wmt14_en_fr": Recipe(
        "wmt14_en_fr",
        _FR,
        train=(
            _files("europarl-v7", _EUROPARL_V7, "training/europarl-v7.fr-en", _FR),
            _files("commoncrawl", _COMMONCRAWL, "commoncrawl.fr-en", _FR),
            _files("un", _UN, "un/undoc.2000.fr-en", _FR),
            _files("news-commentary-v9", _NC_V9, "training/news-commentary-v9.fr-en", _FR),
            Source(
                "giga-fren",
                _GIGA_FREN,
                members={lang: f"giga-fren.release2.fixed.{lang}.gz" for lang in _FR},
            ),
        ),
        holdout=True,
    ),
    # WMT'19 En-De without the optional ParaCrawl v3 (31M noisy pairs) and Wiki Titles v1 (short
    # titles), both in HAT's set; the TSVs hold (de, en) except ParaCrawl's (en, de).
    "wmt19_en_de": Recipe(
        "wmt19_en_de",
        _DE,
        train=(
            Source("europarl-v9", _EUROPARL_V9, columns={"de": 0, "en": 1}),
            Source("paracrawl-v3", _PARACRAWL_V3, columns={"en": 0, "de": 1}, optional=True),
            _files("commoncrawl", _COMMONCRAWL, "commoncrawl.de-en", _DE),
            Source("news-commentary-v14", _NC_V14, columns={"de": 0, "en": 1}),
            Source("wikititles-v1", _WIKITITLES_V1, columns={"de": 0, "en": 1}, optional=True),
            _files("rapid-2019", _RAPID_2019, "rapid2019.de-en", _DE),
        ),
        valid=(
            Source(
                "newstest2017",
                _WMT19_DEV,
                members={
                    "en": "dev/newstest2017-ende-src.en.sgm",
                    "de": "dev/newstest2017-ende-ref.de.sgm",
                },
            ),
        ),
    ),
}


def get_recipe(corpus: str) -> Recipe:
    """The download recipe of `corpus`."""
    try:
        return RECIPES[corpus]
    except KeyError:
        known = ", ".join(sorted(RECIPES))
        raise ConfigError(f"corpus {corpus!r} has no download recipe (recipes: {known})") from None


def optional_sources() -> list[str]:
    """Names of the optional sources of every recipe (`--include` choices)."""
    names = {s.name for recipe in RECIPES.values() for s in recipe.train if s.optional}
    return sorted(names)


def output_files(corpus: str, folder: str | Path = ".") -> dict[str, str]:
    """The files `fetch_wmt` writes for `corpus` into `folder`, keyed `{split}_{lang}`, `recipe`."""
    recipe = get_recipe(corpus)
    names = {
        f"{split}_{lang}": f"{split}.{lang}.gz"
        for split in recipe.splits
        for lang in recipe.languages
    }
    return {key: str(Path(folder) / name) for key, name in {**names, "recipe": RECIPE_JSON}.items()}


def archive_url(archive: Archive, url_base: str | None = None) -> str:
    """The archive's URL, or `{url_base}/{file name}` (a mirror) when `url_base` is given."""
    return f"{url_base.rstrip('/')}/{archive.filename}" if url_base else archive.url


def normalize(text: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends (Moses' cleaning)."""
    return " ".join(text.split())


def reject_reason(source: str, target: str, settings: CleanSettings) -> str | None:
    """The cleaning filter that drops a normalized pair (`empty`, `too_long`, `ratio`), or None."""
    if not source or not target:
        return "empty"
    src, tgt = source.split(" "), target.split(" ")
    longest_word = max(len(word) for word in (*src, *tgt))
    if max(len(src), len(tgt)) > settings.max_tokens or longest_word > settings.max_word_chars:
        return "too_long"
    if len(src) / len(tgt) > settings.ratio or len(tgt) / len(src) > settings.ratio:
        return "ratio"
    return None


def find_member(names: Sequence[str], wanted: str, where: str) -> str:
    """The archive member `wanted`, else the only member with its file name in any folder."""
    if wanted in names:
        return wanted
    base = wanted.rsplit("/", 1)[-1]
    hits = [name for name in names if name == base or name.endswith("/" + base)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise DataError(f"{where}: member {wanted!r} is ambiguous ({', '.join(hits)})")
    listing = ", ".join(names[:_LISTED_MEMBERS]) or "no files"
    more = f" and {len(names) - _LISTED_MEMBERS} more" if len(names) > _LISTED_MEMBERS else ""
    raise DataError(f"{where}: no member {wanted!r} (nor */{base}); it holds: {listing}{more}")


@dataclass(frozen=True)
class _Fetched:
    """A downloaded (or cached) archive."""

    archive: Archive
    url: str
    path: Path
    sha256: str

    @property
    def where(self) -> str:
        return f"archive {self.path.name} from {self.url}"


class _Split:
    """One output split: its temporary gzip files and its cleaning counts."""

    def __init__(
        self, name: str, languages: Sequence[str], work: Path, stack: contextlib.ExitStack
    ) -> None:
        self.name = name
        self.counts = dict.fromkeys(("input", *FILTERS, "output"), 0)
        self.paths = {lang: work / f"{name}.{lang}.gz" for lang in languages}
        self._handles = [stack.enter_context(_gzip_writer(p)) for p in self.paths.values()]

    def write(self, pair: Sequence[str]) -> None:
        for handle, text in zip(self._handles, pair, strict=True):
            handle.write(text.encode("utf-8") + b"\n")
        self.counts["output"] += 1

    def report(self) -> dict[str, Any]:
        """Counts, and the pairs left after each filter in order."""
        remaining, filters = self.counts["input"], []
        for name in FILTERS:
            remaining -= self.counts[name]
            filters.append({"filter": name, "dropped": self.counts[name], "remaining": remaining})
        return {"counts": dict(self.counts), "filters": filters}


@contextlib.contextmanager
def _gzip_writer(path: Path) -> Iterator[IO[bytes]]:
    """A gzip file with a reproducible header (no name, no time stamp)."""
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0) as handle,
    ):
        yield handle


class _Cleaner:
    """Applies the filters to raw pairs; remembers kept pairs for deduplication.

    Pairs are remembered as 8-byte BLAKE2b hashes (about 70 bytes of memory each: ~3 GB for the
    ~40M pairs of WMT'14 En-Fr); the chance that two distinct pairs collide there is ~1e-4.
    """

    def __init__(self, settings: CleanSettings) -> None:
        self.settings = settings
        self._seen: set[int] = set()

    def add(self, split: _Split, pair: tuple[bytes, bytes]) -> None:
        split.counts["input"] += 1
        try:
            texts = [normalize(side.decode("utf-8")) for side in pair]
        except UnicodeDecodeError:
            split.counts["invalid_utf8"] += 1
            return
        reason = reject_reason(texts[0], texts[1], self.settings)
        if reason is None and self.settings.dedupe:
            digest = hashlib.blake2b("\t".join(texts).encode("utf-8"), digest_size=8).digest()
            key = int.from_bytes(digest, "big")
            reason = "duplicate" if key in self._seen else None
            self._seen.add(key)
        if reason is None:
            split.write(texts)
        else:
            split.counts[reason] += 1


def _copy_member(stream: IO[bytes], member: str, dest: Path) -> None:
    """Write a member to `dest`: gunzipped if `.gz`, only its `<seg>` texts if `.sgm`."""
    if member.endswith(".gz"):
        stream = gzip.GzipFile(fileobj=stream)
    with open(dest, "wb") as out:
        if member.endswith(".sgm"):
            for line in stream:
                if match := _SEG.search(line):
                    out.write(match.group(1).strip() + b"\n")
        else:
            shutil.copyfileobj(stream, out, _CHUNK)


def _extract(fetched: _Fetched, source: Source, work: Path) -> dict[str, tuple[str, Path]]:
    """Copy the source's members into `work`; return language -> (member name, file)."""
    if fetched.archive.filename.endswith(".zip"):
        with zipfile.ZipFile(fetched.path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
            return _copy_members(source, fetched, names, archive.open, work)
    with tarfile.open(fetched.path, "r:*") as archive:
        members = {member.name: member for member in archive.getmembers() if member.isfile()}

        def open_member(name: str) -> IO[bytes]:
            handle = archive.extractfile(members[name])
            assert handle is not None  # a regular file
            return handle

        return _copy_members(source, fetched, list(members), open_member, work)


def _copy_members(
    source: Source,
    fetched: _Fetched,
    names: list[str],
    opener: Callable[[str], IO[bytes]],
    work: Path,
) -> dict[str, tuple[str, Path]]:
    picked = {
        lang: find_member(names, path, fetched.where) for lang, path in source.members.items()
    }
    files = {}
    for lang, member in sorted(picked.items(), key=lambda item: names.index(item[1])):
        dest = work / f"{source.name}.{lang}.txt"
        files[lang] = (member, dest)
        with opener(member) as stream:
            _copy_member(stream, member, dest)
    return files


def _aligned_pairs(
    files: Mapping[str, tuple[str, Path]], languages: Sequence[str], where: str
) -> Iterator[tuple[bytes, bytes]]:
    """Lines of the two extracted members side by side; unequal line counts are an error."""
    (first, first_path), (second, second_path) = (files[lang] for lang in languages)
    with open(first_path, "rb") as a, open(second_path, "rb") as b:
        for number, (x, y) in enumerate(itertools.zip_longest(a, b), start=1):
            if x is None or y is None:
                short = first if x is None else second
                raise DataError(
                    f"{where}: members {first} and {second} are not aligned "
                    f"({short} ends after line {number - 1})"
                )
            yield x, y


def _tsv_pairs(
    path: Path, columns: Mapping[str, int], languages: Sequence[str]
) -> Iterator[tuple[bytes, bytes]]:
    """Pairs from a tab-separated file (gzipped if `.gz`); a missing column reads as empty."""
    first, second = (columns[lang] for lang in languages)
    with gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb") as handle:
        for line in handle:
            fields = line.rstrip(b"\r\n").split(b"\t")
            yield (
                fields[first] if first < len(fields) else b"",
                fields[second] if second < len(fields) else b"",
            )


def _run_source(
    source: Source,
    fetched: _Fetched,
    languages: Sequence[str],
    work: Path,
    route: Callable[[], _Split],
    cleaner: _Cleaner,
) -> dict[str, Any]:
    """Stream one source through the cleaner into the split `route` picks per pair."""
    files: dict[str, tuple[str, Path]] = {}
    pairs: Iterator[tuple[bytes, bytes]]
    count = 0
    try:
        if source.columns:
            taken = {lang: f"column {column + 1}" for lang, column in source.columns.items()}
            pairs = _tsv_pairs(fetched.path, source.columns, languages)
        else:
            files = _extract(fetched, source, work)
            taken = {lang: member for lang, (member, _) in files.items()}
            pairs = _aligned_pairs(files, languages, fetched.where)
        for pair in pairs:
            count += 1
            cleaner.add(route(), pair)
    except _ARCHIVE_ERRORS as error:
        dropped = ""
        if fetched.archive.sha256 is None:  # unverified: download it again next time
            fetched.path.unlink(missing_ok=True)
            dropped = "; removed from the cache"
        raise DataError(
            f"{fetched.where}: corrupt or truncated archive ({error}){dropped}"
        ) from None
    finally:
        for _, path in files.values():
            path.unlink(missing_ok=True)
    return {
        "name": source.name,
        "archive": fetched.archive.cache_name,
        "taken": taken,
        "pairs": count,
    }


def _router(train: _Split, valid: _Split | None, every: int) -> Callable[[], _Split]:
    """Split of each successive training pair: every `every`-th (1-based) goes to `valid`."""
    if valid is None or every <= 0:
        return lambda: train
    index = itertools.count(1)
    return lambda: valid if next(index) % every == 0 else train


def _select(recipe: Recipe, include: Sequence[str]) -> tuple[Source, ...]:
    optional = {source.name for source in recipe.train if source.optional}
    unknown = sorted(set(include) - optional)
    if unknown:
        known = ", ".join(sorted(optional)) or "none"
        raise ConfigError(
            f"--include: {', '.join(unknown)} is not an optional source of {recipe.corpus} "
            f"(optional: {known})"
        )
    return tuple(s for s in recipe.train if not s.optional or s.name in include)


def _check_options(recipe: Recipe, settings: CleanSettings, holdout_every: int | None) -> int:
    """Validate the settings; return the holdout period (0: none)."""
    if settings.max_tokens < 1:
        raise ConfigError(f"--max-tokens: {settings.max_tokens} must be at least 1")
    if settings.ratio < 1.0:
        raise ConfigError(f"--ratio: {settings.ratio} must be at least 1")
    if not recipe.holdout:
        if holdout_every is not None:
            valid = ", ".join(source.name for source in recipe.valid) or "none"
            raise ConfigError(
                f"--holdout-every: {recipe.corpus} holds out no valid split (its valid: {valid})"
            )
        return 0
    every = DEFAULT_HOLDOUT_EVERY if holdout_every is None else holdout_every
    if every < 2:
        raise ConfigError(f"--holdout-every: {every} must be at least 2")
    return every


def _check_no_shadow(out_dir: Path, recipe: Recipe) -> None:
    """Refuse a plain `{split}.{lang}` that `nasflow data prepare` would read before our `.gz`."""
    for split in recipe.splits:
        for lang in recipe.languages:
            plain = out_dir / f"{split}.{lang}"
            if plain.exists():
                raise DataError(
                    f"{plain} exists and would be read instead of the fetched {plain.name}.gz: "
                    "remove it, or use it and set data.fetch: false"
                )


def _download_all(
    sources: Sequence[Source],
    cache_dir: Path,
    url_base: str | None,
    progress: Callable[[str], None],
) -> dict[str, _Fetched]:
    """Every archive once, before any extraction (a bad URL fails fast)."""
    fetched: dict[str, _Fetched] = {}
    for archive in (source.archive for source in sources):
        if archive.cache_name in fetched:
            continue
        url = archive_url(archive, url_base)
        progress(f"archive {url}")
        path, digest = download_cached(url, cache_dir / archive.cache_name, archive.sha256)
        fetched[archive.cache_name] = _Fetched(archive, url, path, digest)
    return fetched


def _publish(splits: Mapping[str, _Split], out_dir: Path, corpus: str) -> dict[str, Any]:
    """Move the complete split files into `out_dir`; return their line counts and sha256s."""
    for split in splits.values():
        if split.counts["output"] == 0:
            raise DataError(f"{corpus}: no {split.name} pairs left after cleaning {split.counts}")
    files = {
        path.name: {"lines": split.counts["output"], "sha256": sha256_file(path)}
        for split in splits.values()
        for path in split.paths.values()
    }
    (out_dir / RECIPE_JSON).unlink(missing_ok=True)  # absent until the new set is complete
    for split in splits.values():
        for path in split.paths.values():
            os.replace(path, out_dir / path.name)
    return files


def fetch_wmt(
    corpus: str,
    out_dir: str | Path,
    *,
    cache_dir: str | Path = DEFAULT_CACHE,
    url_base: str | None = None,
    settings: CleanSettings | None = None,
    holdout_every: int | None = None,
    include: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Download, extract, split and clean `corpus` into `out_dir`; return the recipe manifest.

    `url_base` replaces everything before the file name of every archive URL (a mirror);
    `holdout_every` overrides N of a held-out valid split (default 1333); `include` adds optional
    sources by name. Nothing is left in `out_dir` but complete files: on any error a `DataError`
    names the URL, archive or member and the split files of this run are discarded.
    """
    recipe = get_recipe(corpus)
    settings = settings or CleanSettings()
    every = _check_options(recipe, settings, holdout_every)
    train_sources = _select(recipe, include)
    say = progress or (lambda message: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_no_shadow(out_dir, recipe)
    fetched = _download_all((*recipe.valid, *train_sources), Path(cache_dir), url_base, say)
    work = Path(tempfile.mkdtemp(prefix=".fetch-wmt-", dir=out_dir))
    try:
        with contextlib.ExitStack() as stack:
            splits = {name: _Split(name, recipe.languages, work, stack) for name in recipe.splits}
            plan = [(s, _router(splits["valid"], None, 0)) for s in recipe.valid]  # all valid
            route = _router(splits["train"], splits.get("valid"), every)
            plan += [(s, route) for s in train_sources]
            sources = _run_plan(plan, fetched, recipe.languages, work, _Cleaner(settings), say)
        files = _publish(splits, out_dir, corpus)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    manifest = {
        "corpus": corpus,
        "languages": list(recipe.languages),
        "nasflow_version": __version__,
        "settings": {
            **asdict(settings),
            "holdout_every": every or None,
            "valid": _valid_description(recipe, every),
            "include": sorted(include),
            "url_base": url_base,
        },
        "archives": [_archive_entry(item) for item in fetched.values()],
        "sources": sources,
        "splits": {name: split.report() for name, split in splits.items()},
        "files": files,
    }
    write_json_atomic(out_dir / RECIPE_JSON, manifest)
    return manifest


def _run_plan(
    plan: Sequence[tuple[Source, Callable[[], _Split]]],
    fetched: Mapping[str, _Fetched],
    languages: Sequence[str],
    work: Path,
    cleaner: _Cleaner,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Run every (source, router) in order, sharing one cleaner (and its duplicate memory)."""
    entries = []
    for source, route in plan:
        archive = fetched[source.archive.cache_name]
        entry = _run_source(source, archive, languages, work, route, cleaner)
        entries.append(entry)
        say(f"{source.name}: {entry['pairs']} pairs ({', '.join(entry['taken'].values())})")
    return entries


def _valid_description(recipe: Recipe, every: int) -> str | None:
    if every:
        return f"every {every}th pair of the concatenated training sources, before cleaning"
    if recipe.valid:
        return ", ".join(source.name for source in recipe.valid)
    return None


def _archive_entry(item: _Fetched) -> dict[str, Any]:
    return {
        "name": item.archive.cache_name,
        "url": item.url,
        "registry_url": item.archive.url,
        "sha256": item.sha256,
        "verified": item.archive.sha256 is not None,
        "bytes": item.path.stat().st_size,
    }
