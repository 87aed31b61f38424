"""Damaged, crafted or foreign input files: refused with one line that names the file, nothing
in them is ever run, and nothing half-written (or overwritten) is left behind (issue 17)."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from nasflow.core.errors import DataError, NasflowError
from nasflow.core.io import (
    connect_sqlite,
    iter_jsonl,
    load_torch,
    read_lines,
    read_state_rows,
)
from nasflow.core.state import (
    SearchStateError,
    StateFolder,
    TrainStateError,
    rng_state,
    set_rng_state,
)
from nasflow.efficiency.latency_dataset import ROWS_FILE, read_rows
from nasflow.llm.cache import ReplyCache
from nasflow.llm.examples import count_lines
from nasflow.lts.proxy_check import read_state
from nasflow.lts.search import MeasurementCache
from nasflow.model import ModelConfig
from nasflow.model.checkpoint import FORMAT, CheckpointError, load_model
from nasflow.predictors.distilled import DistilledPredictor
from nasflow.predictors.latency import LatencyPredictor
from nasflow.space.hat import get_space
from nasflow.tfs.format import read_tfs_eval
from nasflow.train.loop import STATE_KEYS, Trainer
from nasflow.train.settings import TrainSettings


def _one_line_naming(error: pytest.ExceptionInfo, path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    return message


# ---- crafted pickles: refused, nothing runs ------------------------------------------------------


class _RunsCode:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted(path: Path, marker: Path, how: str) -> Path:
    payload = {"format": FORMAT, "model": _RunsCode(marker), "state_dict": {}}
    if how == "torch.save":
        torch.save(payload, path)
    else:  # a bare pickle, as torch's legacy format reads it
        path.write_bytes(pickle.dumps(payload, protocol=2))
    return path


def _load_train_state(path: Path) -> None:
    folder = StateFolder(path.parent, {"any": 1})  # no inputs.json: the check passes
    (path.parent / "inputs.json").write_text(json.dumps({"any": 1}))
    folder.load()


LOADERS = {
    "train state.pt": _load_train_state,
    "model checkpoint": load_model,
    "latency predictor": LatencyPredictor.from_file,
    "distill MLP": DistilledPredictor.load,
    "load_torch": lambda path: load_torch(path, "test file"),
}


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_a_crafted_pickle_is_refused_and_never_runs(tmp_path: Path, loader: str, how: str) -> None:
    marker = tmp_path / "MARKER"
    path = _crafted(tmp_path / "state.pt", marker, how)
    with pytest.raises(NasflowError) as error:
        LOADERS[loader](path)
    message = _one_line_naming(error, path)
    assert "it would import posix.system" in message and "nothing in the file was run" in message
    assert not marker.exists()


def test_a_crafted_state_in_a_real_state_folder_is_refused(tiny_data: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _trainer(tiny_data, state).run(stop_after=5)
    marker = tmp_path / "MARKER"
    _crafted(state / "state.pt", marker, "torch.save")
    with pytest.raises(TrainStateError) as error:
        _trainer(tiny_data, state).run(tmp_path / "model.pt")
    message = _one_line_naming(error, state / "state.pt")
    assert "refused to read resumable training state" in message and "--fresh" in message
    assert not marker.exists() and not (tmp_path / "model.pt").exists()


# ---- torch files: damaged, foreign, incomplete ---------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"not a torch file at all\x00\xff", "not a torch file"),
        ("truncated", "a truncated or damaged torch file"),
    ],
)
def test_damaged_torch_files_are_one_line(tmp_path: Path, content, expected: str) -> None:
    path = tmp_path / "state.pt"
    if content == "truncated":
        torch.save({"w": torch.zeros(100)}, path)
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)
    for loader in LOADERS.values():
        with pytest.raises(NasflowError, match=expected) as error:
            loader(path)
        _one_line_naming(error, path)


def _settings(**changes) -> TrainSettings:
    values = dict(
        mode="fixed", seed=3, max_updates=10, max_tokens=300, warmup_updates=2,
        save_interval_updates=5, valid_interval_updates=5, log_interval_updates=5,
        valid_sentences=20, device="cpu", max_positions=64,
    )  # fmt: skip
    return TrainSettings(**{**values, **changes})


def _trainer(data: Path, state: Path, **changes) -> Trainer:
    space = get_space("demo")
    return Trainer(
        data,
        _settings(**changes),
        space="demo",
        model_config=ModelConfig(max_positions=64),
        state_dir=state,
        arch=space.smallest(),
        progress=False,
    )


def test_a_state_missing_keys_names_the_file_and_the_keys(tiny_data: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _trainer(tiny_data, state).run(stop_after=5)
    saved = torch.load(state / "state.pt", weights_only=True)
    torch.save({k: v for k, v in saved.items() if k not in ("rng", "epoch")}, state / "state.pt")
    with pytest.raises(TrainStateError) as error:
        _trainer(tiny_data, state).run(tmp_path / "model.pt")
    message = _one_line_naming(error, state / "state.pt")
    assert "lacks rng, epoch" in message
    assert not (tmp_path / "model.pt").exists()
    # A value of the wrong kind is named too, with the file.
    torch.save({**saved, "rng": {"torch": "no"}}, state / "state.pt")
    with pytest.raises(TrainStateError, match="does not fit this run") as error:
        _trainer(tiny_data, state).run()
    _one_line_naming(error, state / "state.pt")
    # Not a dict at all.
    torch.save([1, 2], state / "state.pt")
    with pytest.raises(TrainStateError, match="not a resumable state") as error:
        _trainer(tiny_data, state).state.load(STATE_KEYS)
    _one_line_naming(error, state / "state.pt")


def test_a_model_missing_keys_names_them(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"format": FORMAT, "space": "demo", "state_dict": {}}, path)
    with pytest.raises(CheckpointError) as error:
        load_model(path)
    message = _one_line_naming(error, path)
    assert "lacks vocab_size, config, layout, arch" in message


# ---- RNG states round-trip as plain data ---------------------------------------------------------


def _draws() -> tuple:
    return (torch.rand(3).tolist(), random.random(), np.random.rand(3).tolist(), np.random.randn())


def test_rng_states_round_trip_through_weights_only_load(tmp_path: Path) -> None:
    np.random.randn()  # leave a cached Gaussian in numpy's legacy state
    folder = StateFolder(tmp_path, {"x": 1})
    folder.save({"rng": rng_state()})
    expected = _draws()
    _draws()
    set_rng_state(folder.load(["rng"])["rng"])
    assert _draws() == expected
    assert torch.serialization.get_unsafe_globals_in_checkpoint(folder.state_file) == []


def test_a_state_saved_with_numpy_arrays_still_resumes(tmp_path: Path) -> None:
    """States written before the RNG states became plain data hold numpy's array."""
    folder = StateFolder(tmp_path, {"x": 1})
    old = {"torch": torch.get_rng_state(), "python": random.getstate()}
    folder.save({"rng": {**old, "numpy": np.random.get_state()}})
    expected = _draws()
    set_rng_state(folder.load(["rng"])["rng"])
    assert _draws() == expected


# ---- damaged SQLite caches: refused, never overwritten -------------------------------------------


def _damaged_db(path: Path) -> bytes:
    content = b"these are paid replies, honest" * 200
    path.write_bytes(content)
    return content


@pytest.mark.parametrize(
    "opener",
    [
        lambda path: ReplyCache(path),
        lambda path: MeasurementCache(path, "cpu"),
        lambda path: connect_sqlite(path, "test cache"),
    ],
    ids=["llm reply cache", "lts measurement cache", "connect_sqlite"],
)
def test_a_damaged_cache_is_refused_and_left_as_it_is(tmp_path: Path, opener) -> None:
    path = tmp_path / "cache.sqlite"
    content = _damaged_db(path)
    with pytest.raises(DataError) as error:
        opener(path)
    message = _one_line_naming(error, path)
    assert "is damaged (file is not a database)" in message
    assert f"mv {path} {path}.damaged" in message
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.sqlite"]


def test_a_damaged_cache_moved_aside_starts_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    _damaged_db(path)
    path.rename(tmp_path / "cache.sqlite.damaged")
    cache = ReplyCache(path)
    assert len(cache) == 0
    cache.close()


def test_a_cache_that_cannot_be_opened_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.sqlite"
    folder.mkdir()
    with pytest.raises(DataError, match="cannot open the test cache") as error:
        connect_sqlite(folder, "test cache")
    _one_line_naming(error, folder)
    healthy = connect_sqlite(tmp_path / "ok.sqlite", "test cache", setup=["CREATE TABLE t (x)"])
    assert isinstance(healthy, sqlite3.Connection)
    healthy.close()


# ---- gzip corpora and released TFS-Eval files ----------------------------------------------------


def _bad_gzips(tmp_path: Path) -> dict[str, Path]:
    truncated = tmp_path / "train.en.gz"
    data = gzip.compress(b"".join(b"sentence %d\n" % i for i in range(5000)))
    truncated.write_bytes(data[: len(data) // 2])
    plain = tmp_path / "train.de.gz"
    plain.write_bytes(b"a plain text file\nnamed .gz\n")
    return {"truncated gzip file": truncated, "not a gzip file": plain}


def test_a_truncated_or_plain_gz_is_one_line(tmp_path: Path) -> None:
    for expected, path in _bad_gzips(tmp_path).items():
        for reader in (read_lines, count_lines, lambda p: list(iter_jsonl(p))):
            with pytest.raises(DataError, match=expected) as error:
                reader(path)
            _one_line_naming(error, path)


def test_a_truncated_released_split_names_the_file(tfs_eval: Path) -> None:
    split = next(tfs_eval.glob("*/*/test.jsonl"))
    gz = split.with_name("test.jsonl.gz")
    data = gzip.compress(split.read_bytes())
    gz.write_bytes(data[: len(data) - 12])  # the last bytes (CRC, size) lost
    split.unlink()
    with pytest.raises(DataError, match="truncated gzip file") as error:
        read_tfs_eval(tfs_eval)
    _one_line_naming(error, gz)


# ---- resumable-state rows --------------------------------------------------------------------


def test_a_latency_row_without_arch_id_names_the_file_and_line(tmp_path: Path) -> None:
    rows = tmp_path / ROWS_FILE
    text = '{"arch_id": "a", "pass": 0}\n{"pass": 0}\n{"arch_id": "b'  # the last one torn
    rows.write_text(text)
    with pytest.raises(
        DataError, match=r"rows\.jsonl:2: the latency measurement row lacks arch_id"
    ):
        read_rows(rows)
    assert rows.read_text() == text  # refused: nothing rewritten
    rows.write_text('{"arch_id": "a", "pass": "x"}\n')
    with pytest.raises(DataError, match=r"rows\.jsonl:1: .*pass is 'x'"):
        read_rows(rows)


def test_state_rows_drop_only_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    path.write_text('{"arch_id": "a"}\n\n{"arch_id": "b"}\n{"arch_id": "c", "sc')
    rows = read_state_rows(path, "test", ("arch_id",))
    assert [(n, r["arch_id"]) for n, r in rows] == [(1, "a"), (3, "b")]
    assert path.read_text() == '{"arch_id": "a"}\n\n{"arch_id": "b"}\n'
    # A whole last row without its newline is kept, and the newline added.
    path.write_text('{"arch_id": "a"}')
    assert [r["arch_id"] for _, r in read_state_rows(path, "test")] == ["a"]
    assert path.read_text() == '{"arch_id": "a"}\n'
    # Damage before the last line is refused, naming the line; the file is left as it is.
    for bad, reason in (("{oops", "damaged test row"), ("[1]", "must be a JSON object")):
        text = f'{{"arch_id": "a"}}\n{bad}\n{{"arch_id": "b"}}\n'
        path.write_text(text)
        with pytest.raises(DataError, match=rf"state\.jsonl:2: .*{reason}") as error:
            read_state_rows(path, "test", hint="delete it")
        assert _one_line_naming(error, path).endswith("; delete it")
        assert path.read_text() == text
    path.write_bytes(b'{"arch_id": "a"}\n\xff\xfe\n')
    with pytest.raises(DataError, match=r"state\.jsonl:2: damaged test row \(not UTF-8\)"):
        read_state_rows(path, "test")
    assert read_state_rows(tmp_path / "absent.jsonl", "test") == []


def test_a_proxy_check_row_without_id_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    path.write_text('{"id": "a", "fingerprint": "f"}\n{"fingerprint": "f"}\n')
    with pytest.raises(DataError, match=r"state\.jsonl:2: the proxy-check state row lacks id"):
        read_state(path, "f")


def test_search_state_restore_errors_name_the_file(tmp_path: Path) -> None:
    folder = StateFolder(tmp_path, {"x": 1}, payload="json")
    folder.save({"iteration": 1})
    state = folder.load()
    lacks, kind = r"search_state\.json: .*lacks key 'scores'", r"search_state\.json: .*wrong kind"
    with pytest.raises(SearchStateError, match=lacks), folder.restoring():
        state["scores"]
    with pytest.raises(SearchStateError, match=kind), folder.restoring():
        int(state["inputs"])
    with pytest.raises(SearchStateError) as error, folder.restoring():
        raise SearchStateError("the saved architecture does not round-trip")
    assert str(error.value).startswith(f"{folder.state_file}: the saved architecture")
