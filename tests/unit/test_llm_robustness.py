"""LLM-PP robustness (A.8.4, `nasflow predictors robustness`): mean over architectures of the
std of three samples, against a local non-deterministic LLM server and the offline stand-in."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nasflow.cli import main
from nasflow.core.errors import DataError
from nasflow.core.io import iter_jsonl
from nasflow.predictors.llm import OFFLINE_SETUP
from nasflow.predictors.robustness import OFFLINE_NOTE, robustness_table

LATENCY_S = 0.005


class NoisyServer:
    """OpenAI-compatible chat completions on 127.0.0.1 whose replies to one prompt differ: the
    k-th request of a prompt (k = 0, 1, 2, ...) gets `20 + k * step(prompt)`, `step` in 1..5
    from the prompt's hash, after a short sleep. Every reply is kept per prompt."""

    def __init__(self) -> None:
        self.replies: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][0]["content"]
                step = 1 + hashlib.sha256(prompt.encode()).digest()[0] % 5
                with owner.lock:
                    seen = owner.replies.setdefault(prompt, [])
                    value = 20.0 + len(seen) * step
                    seen.append(value)
                time.sleep(LATENCY_S)
                payload = {
                    "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"{value:.2f}"}}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
                }  # fmt: skip
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.replies.values())


@pytest.fixture
def server() -> Iterator[NoisyServer]:
    running = NoisyServer()
    yield running
    running.httpd.shutdown()


def _predict(tfs_eval: Path, tmp_path: Path, out: str, *options: str) -> Path:
    path = tmp_path / out
    argv = ["llm-pp", "predict", "--tfs-eval", str(tfs_eval), "--demonstrations", "3"]
    argv += ["--cache", str(tmp_path / "cache.sqlite"), *options, "--out", str(path)]
    assert main(argv) == 0
    return path


def test_mean_std_of_three_samples_from_a_noisy_llm(
    tfs_eval: Path, tmp_path: Path, server: NoisyServer
) -> None:
    llm = ["--provider", "openai", "--model", "noisy", "--base-url", server.url]
    single = _predict(tfs_eval, tmp_path, "one.jsonl", *llm)
    n_records = len(list(iter_jsonl(single)))
    assert n_records == 12 and server.requests == 12  # 2 seeds x 6 test archs
    three = _predict(tfs_eval, tmp_path, "three.jsonl", *llm, "--samples", "3")
    # Sample 0 is the one-sample run's reply (same cache key): 2 new requests per architecture.
    assert server.requests == 12 * 3

    records = [record for _, record in iter_jsonl(three)]
    for record in records:
        assert len(record["sample_values"]) == 3 and len(record["latencies_s"]) == 3
        assert min(record["latencies_s"]) >= LATENCY_S  # recorded request latencies
    out, md = tmp_path / "robustness.csv", tmp_path / "robustness.md"
    argv = ["predictors", "robustness", "--predictions", str(three), "--samples", "3"]
    assert main([*argv, "--out", str(out), "--markdown", str(md)]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == 1 and table.loc[0, "setup"] == "openai/noisy"
    assert table.loc[0, "architectures"] == 12 and table.loc[0, "excluded"] == 0

    # The figure from the server's side: every prompt got 20, 20 + s, 20 + 2s.
    stds = [np.std(values) for values in server.replies.values()]
    assert len(stds) == 12 and all(len(v) == 3 for v in server.replies.values())
    assert table.loc[0, "mean_std"] == pytest.approx(np.mean(stds), abs=1e-6)
    assert table.loc[0, "max_std"] == pytest.approx(np.max(stds), abs=1e-6)
    assert table.loc[0, "mean_std"] > 0 and table.loc[0, "note"] == ""
    assert "| openai/noisy | demo | 3 | 12 | 0 |" in md.read_text()


def test_offline_stand_in_is_zero_and_says_why(tfs_eval: Path, tmp_path: Path) -> None:
    three = _predict(tfs_eval, tmp_path, "three.jsonl", "--samples", "3")
    out, md = tmp_path / "robustness.csv", tmp_path / "robustness.md"
    argv = ["predictors", "robustness", "--predictions", str(three)]
    assert main([*argv, "--out", str(out), "--markdown", str(md)]) == 0
    table = pd.read_csv(out)
    assert list(table["setup"]) == [OFFLINE_SETUP]
    assert table.loc[0, "mean_std"] == 0.0 and table.loc[0, "samples"] == 3
    assert table.loc[0, "note"] == OFFLINE_NOTE
    assert "offline stand-in: deterministic, std 0 by construction" in md.read_text()


def _record(task: str, arch: str, values, setup: str = "openai/m") -> dict:
    return {"setup": setup, "predictor": f"LLM-PP {setup}", "task": task, "seed": 1,
            "arch_id": arch, "sample_values": values}  # fmt: skip


def test_failed_samples_are_excluded_and_tasks_averaged() -> None:
    records = [
        _record("a", "x", [1.0, 2.0, 3.0]),
        _record("a", "y", [5.0, 5.0, 5.0]),
        _record("a", "z", [5.0, None, 5.0]),
        _record("b", "x", [0.0, 3.0, 6.0]),
    ]
    table = robustness_table(records).set_index("task")
    assert table.loc["a", "mean_std"] == pytest.approx(np.std([1, 2, 3]) / 2)
    assert table.loc["a", "architectures"] == 2 and table.loc["a", "excluded"] == 1
    assert table.loc["b", "mean_std"] == pytest.approx(np.std([0, 3, 6]))
    assert table.loc["Average", "mean_std"] == pytest.approx(
        (table.loc["a", "mean_std"] + table.loc["b", "mean_std"]) / 2
    )
    assert list(table.index) == ["a", "b", "Average"]


def test_one_sample_or_old_records_are_refused() -> None:
    with pytest.raises(DataError, match="at least 2 samples"):
        robustness_table([_record("a", "x", [1.0])])
    old = _record("a", "x", [1.0, 2.0])
    del old["sample_values"]
    with pytest.raises(DataError, match="no sample_values"):
        robustness_table([old])
    with pytest.raises(DataError, match="expected 3"):
        robustness_table([_record("a", "x", [1.0, 2.0])], samples=3)
