"""Issue 17's proof: a table of bad inputs, each given to the entry point a user runs (`nasflow
...`). Every one fails with exit status 2 and one line naming the file, key or line and what is
wrong (never a raw traceback), leaves its inputs as they were, and writes nothing: no output, no
temporary file."""

from __future__ import annotations

import gzip
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tests.unit.conftest import TINY_ARCHS

import nasflow.llm
from nasflow.cli import main
from nasflow.model.checkpoint import FORMAT
from nasflow.space.hat import get_space

DEMO = get_space("demo")
ARCH = DEMO.smallest().to_dict()
BASE = "experiment: t\nspace: demo\ndata: {corpus: multi30k, source_lang: en, target_lang: de}\n"
LTS = "experiment: t\nchains: [lts]\n"
HOLE = "NASFLOW_TEST_NO_SUCH_KEY"


# ---- bad file contents: a str/bytes, or a callable that damages the file at a path ---------------


def _gz_truncated(path: Path) -> None:
    data = gzip.compress(b"".join(b"w%d x y z\n" % i for i in range(4000)))
    path.write_bytes(data[: len(data) // 2])


def _gz_of(source: str, cut: int = 12) -> Callable[[Path], None]:
    """The released file `source` (next to path) gzipped, its last `cut` bytes lost."""

    def damage(path: Path) -> None:
        plain = path.with_name(source)
        data = gzip.compress(plain.read_bytes())
        path.write_bytes(data[: len(data) - cut])
        plain.unlink()

    return damage


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _pt_crafted(path: Path) -> None:
    marker = path.parent / "MARKER"
    torch.save({"format": FORMAT, "model": _RunsCode(str(marker)), "state_dict": {}}, path)


def _pickle_crafted(path: Path) -> None:
    marker = path.parent / "MARKER"
    path.write_bytes(pickle.dumps({"format": FORMAT, "x": _RunsCode(str(marker))}, protocol=2))


def _pt_truncated(path: Path) -> None:
    torch.save({"w": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:300])


def _pt(payload) -> Callable[[Path], None]:
    return lambda path: torch.save(payload, path)


def _edit_rows(source: str, edit: Callable[[list[dict]], None]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        edit(rows)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    return damage


def _set(key: str, value):
    def edit(rows: list[dict]) -> None:
        rows[0][key] = value

    return edit


def _lines(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def _template_with(text: str) -> bytes:
    shipped = Path(nasflow.llm.__file__).parent / "templates" / "pp_prompt.yaml"
    return shipped.read_text().replace("{task_name}.", text + ".", 1).encode()


def _arch(**changes) -> str:
    return json.dumps({**ARCH, **changes})


TINY_ARCH_FILE = _lines(*({"id": a.id, "arch": a.to_dict()} for a in TINY_ARCHS[:2]))

# ---- the table ----------------------------------------------------------------------------------
# case(id, argv, expected message pieces, files, out): `files` maps paths to their bad content
# (None deletes); in paths and argv, {t} is the test's folder, {data} a prepared tiny corpus and
# {tfs} a built TFS-Eval set (task demo, split seeds 1 and 2). `out` is what the command would
# write. argv is split on spaces, so JSON in it is written without any.


def case(id, argv, expect, files=None, out=None):
    return pytest.param(argv, expect, files or {}, out, id=id)


def _j(value) -> str:
    return json.dumps(value, separators=(",", ":"))


C = "{t}/c.yaml"
V = "config validate --config {t}/c.yaml"
TFS = "--tfs-eval {tfs} --task demo"
ONNX = "export-onnx --model {t}/m.pt --out {t}/out/onnx"
TRANSLATE = "translate --data {data} --input {t}/in.txt --output {t}/out/hyp.txt --model {t}/m.pt"
CFG = "--config-json " + _j(
    {
        "experiment": "t",
        "space": "demo",
        "data": {"corpus": "multi30k", "source_lang": "en", "target_lang": "de"},
    }
)
# Without `data`: the training, scoring and search commands do not read it (and refuse a
# --config-json key they do not read).
CFG_MODEL = "--config-json " + _j({"experiment": "t", "space": "demo"})
ARCH_TRAIN = (
    f"arch train {CFG_MODEL} --data {{data}} --out {{t}}/out/m.pt --state-dir {{t}}/out/state"
    " --arch"
)
PREDICT = f"llm-pp predict {TFS} --out {{t}}/out/p.jsonl"
DISTILL = f"distill dataset {TFS} --seed 1 --out {{t}}/out/d.jsonl"
PROXY = "lts proxy-check --corpus {t}/ptb --n 2 --steps 1 --out {t}/out/p.json"
PTB = {f"{{t}}/ptb/ptb.{s}.txt": "a b c d\n" * 400 for s in ("train", "valid", "test")}
PTB_TRAIN = "{t}/ptb/ptb.train.txt"
EVAL = f"predictors evaluate {TFS} --out {{t}}/out/e.json"
LAT = f"latency dataset {CFG} --n 2 --runs 1 --out {{t}}/out/lat.csv --state-dir {{t}}/state"
PREP = (
    "data prepare --corpus custom --source local --local-dir {t}/corpus --source-lang en"
    " --target-lang de --train train --valid val --test test --vocab-size 100 --out {t}/out/prep"
)
TRAIN_EN, TRAIN_DE = "{t}/corpus/train.en", "{t}/corpus/train.de"
SPLITS = {
    f"{{t}}/corpus/{s}.{lang}": "ka lo\nmi tu\n"
    for s in ("train", "val", "test")
    for lang in ("en", "de")
}

CASES = [
    # configs
    case(
        "config: unknown key",
        V,
        ["c.yaml", "unknown config key trainer"],
        {C: BASE + "trainer: {}\n"},
    ),
    case(
        "config: wrong type",
        V,
        ["config key seed: 'one' is not of type 'integer'"],
        {C: BASE + "seed: one\n"},
    ),
    case(
        "config: duplicate key",
        V,
        ["c.yaml", "line 5: duplicate key 'seed'"],
        {C: BASE + "seed: 1\nseed: 2\n"},
    ),
    case(
        "config: parents > population",
        V,
        ["search.population (10) must equal"],
        {C: BASE + "search: {population: 10, parents: 20}\n"},
    ),
    case(
        "config: unknown LTS space",
        V,
        ["config key lts.space: unknown LTS space 'nope'"],
        {C: LTS + "lts: {space: nope}\n"},
    ),
    case(
        "config: bad lts.search key",
        V,
        ["config key lts.search: unknown search setting(s): populaton"],
        {C: LTS + "lts: {search: {populaton: 5}}\n"},
    ),
    case(
        "config: bad lts.measure key",
        V,
        ["config key lts.measure: unknown measure setting(s): runz"],
        {C: LTS + "lts: {measure: {runz: 3}}\n"},
    ),
    case(
        "config: demonstrations > train archs",
        V,
        ["llm.demonstrations asks for 10 demonstrations"],
        {C: BASE + "tfs: {num_archs: 6}\n"},
    ),
    case(
        "config: constraint name with spaces",
        V,
        ["config key search.constraints: 'a b'"],
        {C: BASE + "search: {constraints: {a b: {gflops: 1.0}}}\n"},
    ),
    case(
        "config: unknown constraint key",
        V,
        ["search.constraints"],
        {C: BASE + "search: {constraints: {c1: {gflopz: 1.0}}}\n"},
    ),
    case(
        "config: unknown search method",
        V,
        ["search.run names unknown method(s) nope"],
        {C: BASE + "search: {run: [nope]}\n"},
    ),
    case(
        "config: hsnas chain without space",
        V,
        ["missing required config key space (the hsnas chain"],
        {C: "experiment: t\n"},
    ),
    case(
        "config: hsnas chain without data",
        V,
        ["missing required config key data"],
        {C: "experiment: t\nspace: demo\n"},
    ),
    case(
        "config: bad YAML syntax",
        V,
        ["c.yaml:3: invalid YAML"],
        {C: "experiment: t\ndata: [unclosed\n"},
    ),
    case("config: not a mapping", V, ["c.yaml", "must be a mapping"], {C: "- a\n- b\n"}),
    case("config: empty file", V, ["c.yaml"], {C: ""}),
    case("config: file missing", V, ["c.yaml", "config file not found"]),
    case(
        "config: experiment 'paper'",
        V,
        ["experiment must not be 'paper'"],
        {C: BASE.replace("t\n", "paper\n", 1)},
    ),
    # corpora
    case(
        "corpus: truncated .gz",
        PROXY,
        ["ptb.train.txt.gz", "truncated gzip file"],
        {**PTB, PTB_TRAIN: None, PTB_TRAIN + ".gz": _gz_truncated},
        "{t}/out/p.json",
    ),
    case(
        "corpus: not gzip but .gz",
        PROXY,
        ["ptb.train.txt.gz", "not a gzip file"],
        {**PTB, PTB_TRAIN: None, PTB_TRAIN + ".gz": "plain text\n"},
        "{t}/out/p.json",
    ),
    case("corpus: folder missing", PROXY, ["ptb", "not found"], {}, "{t}/out/p.json"),
    case(
        "corpus: split file missing",
        PREP,
        ["test.de"],
        {**SPLITS, "{t}/corpus/test.de": None},
        "{t}/out/prep",
    ),
    case(
        "corpus: line counts differ",
        PREP,
        ["train.en", "train.de"],
        {**SPLITS, TRAIN_DE: "ka\n"},
        "{t}/out/prep",
    ),
    case(
        "corpus: truncated train.en.gz",
        PREP,
        ["train.en.gz", "truncated gzip file"],
        {**SPLITS, TRAIN_EN: None, TRAIN_EN + ".gz": _gz_truncated},
        "{t}/out/prep",
    ),
    # checkpoints and models
    case("model: empty", ONNX, ["m.pt", "the file is empty"], {"{t}/m.pt": b""}, "{t}/out/onnx"),
    case(
        "model: truncated",
        ONNX,
        ["m.pt", "truncated or damaged torch file"],
        {"{t}/m.pt": _pt_truncated},
        "{t}/out/onnx",
    ),
    case(
        "model: not a torch file",
        ONNX,
        ["m.pt", "not a torch file"],
        {"{t}/m.pt": b"hello\x00\xff"},
        "{t}/out/onnx",
    ),
    case(
        "model: crafted pickle (torch.save)",
        ONNX,
        ["m.pt", "nothing in the file was run"],
        {"{t}/m.pt": _pt_crafted},
        "{t}/out/onnx",
    ),
    case(
        "model: crafted bare pickle",
        ONNX,
        ["m.pt", "nothing in the file was run"],
        {"{t}/m.pt": _pickle_crafted},
        "{t}/out/onnx",
    ),
    case(
        "model: missing keys",
        ONNX,
        ["m.pt", "lacks vocab_size, config, layout, arch"],
        {"{t}/m.pt": _pt({"format": FORMAT, "space": "demo", "state_dict": {}})},
        "{t}/out/onnx",
    ),
    case("model: not a dict", ONNX, ["m.pt"], {"{t}/m.pt": _pt([1, 2])}, "{t}/out/onnx"),
    case("model: missing", ONNX, ["m.pt"], {}, "{t}/out/onnx"),
    case(
        "model: crafted, via translate",
        TRANSLATE,
        ["m.pt", "nothing in the file was run"],
        {"{t}/m.pt": _pt_crafted, "{t}/in.txt": "ka lo\n"},
        "{t}/out/hyp.txt",
    ),
    case(
        "model: truncated, via arch score",
        "arch score " + CFG_MODEL + " --model {t}/m.pt --data {data} --out {t}/out/s.json",
        ["m.pt", "truncated"],
        {"{t}/m.pt": _pt_truncated},
        "{t}/out/s.json",
    ),
    case(
        "latency predictor: crafted",
        "latency measure " + CFG + " --predictor {t}/m.pt --out {t}/out/l.json",
        ["m.pt", "nothing in the file was run"],
        {"{t}/m.pt": _pt_crafted},
        "{t}/out/l.json",
    ),
    # architectures
    case(
        "arch: bad JSON",
        ARCH_TRAIN + " {t}/a.json",
        ["a.json"],
        {"{t}/a.json": '{"encoder_embed_dim": 128,'},
        "{t}/out/m.pt",
    ),
    case(
        "arch: outside the space",
        ARCH_TRAIN + " {t}/a.json",
        ["encoder_embed_dim", "999"],
        {"{t}/a.json": _arch(encoder_embed_dim=999)},
        "{t}/out/m.pt",
    ),
    case(
        "arch: wrong space",
        ARCH_TRAIN + " {t}/a.json",
        ["space"],
        {"{t}/a.json": _arch(space="lts-demo")},
        "{t}/out/m.pt",
    ),
    case(
        "arch: missing key",
        ARCH_TRAIN + " {t}/a.json",
        ["decoder_layer_num"],
        {"{t}/a.json": json.dumps({k: v for k, v in ARCH.items() if k != "decoder_layer_num"})},
        "{t}/out/m.pt",
    ),
    case("arch: file missing", ARCH_TRAIN + " {t}/a.json", ["a.json"], {}, "{t}/out/m.pt"),
    case(
        "arch file: arch outside the space",
        DISTILL + " --archs {t}/a.jsonl",
        ["a.jsonl"],
        {"{t}/a.jsonl": _lines({"id": "x", "arch": {**ARCH, "encoder_embed_dim": 999}})},
        "{t}/out/d.jsonl",
    ),
    # caches
    case(
        "cache: junk LLM reply cache",
        PREDICT + " --cache {t}/r.sqlite",
        ["r.sqlite", "is damaged (file is not a database)"],
        {"{t}/r.sqlite": b"paid replies" * 400},
        "{t}/out/p.jsonl",
    ),
    case(
        "cache: junk reply cache, distill",
        DISTILL + " --n 2 --cache {t}/r.sqlite",
        ["r.sqlite", "is damaged"],
        {"{t}/r.sqlite": b"paid replies" * 400},
        "{t}/out/d.jsonl",
    ),
    case(
        "cache: junk LTS cache",
        "lts search --config {t}/c.yaml --out {t}/out/lts --cache {t}/m.sqlite",
        ["m.sqlite", "is damaged"],
        {
            C: LTS + "lts: {text: {corpus: '{t}/ptb', vocab_size: 264}}\n",
            **PTB,
            "{t}/m.sqlite": b"measurements" * 400,
        },
        "{t}/out/lts",
    ),
    # states
    case(
        "state: latency row without arch_id",
        LAT,
        ["rows.jsonl:2", "lacks arch_id"],
        {
            "{t}/state/rows.jsonl": _lines(
                {"arch_id": "a", "pass": 0}, {"pass": 0}, {"arch_id": "b", "pass": 0}
            )
        },
        "{t}/out/lat.csv",
    ),
    case(
        "state: latency torn middle row",
        LAT,
        ["rows.jsonl:2", "damaged"],
        {
            "{t}/state/rows.jsonl": _lines(
                {"arch_id": "a", "pass": 0}, '{"arch_id": "b', {"arch_id": "c", "pass": 0}
            )
        },
        "{t}/out/lat.csv",
    ),
    case(
        "state: proxy-check row without id",
        PROXY + " --state-file {t}/s/state.jsonl",
        ["state.jsonl:2", "lacks id"],
        {**PTB, "{t}/s/state.jsonl": _lines({"id": "a", "fingerprint": "f"}, {"fingerprint": "f"})},
        "{t}/out/p.json",
    ),
    case(
        "state: state.pt crafted",
        ARCH_TRAIN + " " + _j(ARCH),
        ["state.pt"],
        {"{t}/out/state/state.pt": _pt_crafted},
        "{t}/out/m.pt",
    ),
    # constraints
    case(
        "constraint: unknown name",
        f"search run {CFG_MODEL} --method hat --constraint nope --seed 1 --data {{data}}"
        " --out-dir {t}/out/s --state-dir {t}/out/st",
        ["constraint", "nope"],
        {},
        "{t}/out/s",
    ),
    # released TFS-Eval files
    case(
        "tfs-eval: truncated .jsonl.gz",
        EVAL,
        ["test.jsonl.gz", "truncated gzip file"],
        {"{tfs}/1/demo/test.jsonl.gz": _gz_of("test.jsonl")},
        "{t}/out/e.json",
    ),
    case(
        "tfs-eval: missing task folder",
        EVAL,
        ["demo"],
        {"{tfs}/2/demo/test.jsonl": None, "{tfs}/2/demo/train.jsonl": None},
        "{t}/out/e.json",
    ),
    case(
        "tfs-eval: unknown task",
        EVAL.replace("task demo", "task wmt14ende"),
        ["wmt14ende"],
        {},
        "{t}/out/e.json",
    ),
    case(
        "tfs-eval: wrong param count",
        EVAL,
        ["test.jsonl"],
        {"{tfs}/1/demo/test.jsonl": _edit_rows("test.jsonl", _set("params", 5))},
        "{t}/out/e.json",
    ),
    case(
        "tfs-eval: torn row",
        EVAL,
        ["test.jsonl"],
        {
            "{tfs}/1/demo/test.jsonl": lambda p: p.write_text(
                p.read_text()[:-40] + "\n" + p.read_text()
            )
        },
        "{t}/out/e.json",
    ),
    case(
        "predictions: row missing keys",
        f"llm-pp evaluate {TFS} --predictions {{t}}/p.jsonl --out {{t}}/out/e.json",
        ["p.jsonl"],
        {"{t}/p.jsonl": _lines({"predictor": "x", "seed": 1})},
        "{t}/out/e.json",
    ),
    # LLM
    case(
        "llm: template unknown placeholder",
        PREDICT + " --template {t}/tpl.txt",
        ["tpl.txt", "nope"],
        {"{t}/tpl.txt": _template_with("{nope}")},
        "{t}/out/p.jsonl",
    ),
    case(
        "llm: API key variable unset",
        PREDICT
        + " --provider openai --model m --base-url https://api.example.com/v1"
        + f" --api-key-env {HOLE}",
        [HOLE],
        {},
        "{t}/out/p.jsonl",
    ),
    # distillation
    case(
        "distill: archs file leaks TFS-Eval archs",
        DISTILL + " --archs {t}/a.jsonl",
        ["a.jsonl", "TFS-Eval"],
        {"{t}/a.jsonl": TINY_ARCH_FILE},
        "{t}/out/d.jsonl",
    ),
]


def _fill(text: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        text = text.replace("{" + key + "}", value)
    return text


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize(("argv", "expect", "files", "out"), CASES)
def test_a_bad_input_is_named_before_work_starts(
    argv: str,
    expect: list[str],
    files: dict,
    out: str | None,
    tmp_path: Path,
    request,
    capsys,
    monkeypatch,
) -> None:
    monkeypatch.delenv(HOLE, raising=False)
    t = tmp_path / "t"
    t.mkdir()
    places = {"t": str(t)}
    if "{data}" in argv:
        places["data"] = str(request.getfixturevalue("tiny_data"))
    if "{tfs}" in argv:
        places["tfs"] = str(request.getfixturevalue("tfs_eval"))
    for where, content in files.items():
        path = Path(_fill(where, places))
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.unlink(missing_ok=True)
        elif callable(content):
            content(path)
        else:
            text = content if isinstance(content, bytes) else _fill(content, places).encode()
            path.write_bytes(text)
    before = _snapshot(tmp_path)
    try:
        status = main([_fill(word, places) for word in argv.split(" ")])
    except SystemExit as exit:  # argparse's own refusals
        status = exit.code
    err = capsys.readouterr().err.replace("\r", "\n")
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err  # one line (a progress bar may come before it)
    err = lines[0]
    print(f"STATUS {status} MESSAGE {err}")
    assert status == 2, err
    for piece in expect:
        assert _fill(piece, places) in err, err
    assert not (t / "MARKER").exists()
    if out is not None:
        assert not Path(_fill(out, places)).exists(), err
    assert _snapshot(tmp_path) == before  # nothing written, nothing half-written, nothing changed
