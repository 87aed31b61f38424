"""Real-LLM ergonomics against a local fake OpenAI server: the server's word in errors,
max_completion_tokens, the cost estimate (before any request, and over a config's jobs),
progress lines, and distillation labels through the Batch API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nasflow.cli import main
from nasflow.config.resolve import resolve_config
from nasflow.llm import batch as batch_module
from nasflow.llm import progress as progress_module
from nasflow.llm.batch import run_batches
from nasflow.llm.cache import ReplyCache
from nasflow.llm.plan import planned_jobs
from nasflow.llm.predict import PredictSettings, predict
from nasflow.llm.providers import LLMError, OpenAIProvider, token_param_for

SECRET = "sk-test-SECRET-4242"
UNSUPPORTED = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. "
    "Use 'max_completion_tokens' instead."
)


@pytest.fixture
def provider(server, monkeypatch) -> OpenAIProvider:
    monkeypatch.setenv("NASFLOW_TEST_KEY", SECRET)
    return OpenAIProvider(
        "test-model", base_url=server.url, api_key_env="NASFLOW_TEST_KEY", timeout_s=2,
        max_retries=2, backoff_s=0.01,
    )  # fmt: skip


# The server's message in every error.


def test_a_refused_request_says_what_the_server_said(server, provider, tmp_path) -> None:
    server.script, server.error_message = [{"status": 400}], UNSUPPORTED
    with pytest.raises(LLMError) as error:
        predict(provider, ReplyCache(tmp_path / "c.sqlite"), "p", PredictSettings())
    message = str(error.value)
    assert "HTTP 400, BadRequestError" in message and "'test-model'" in message
    assert UNSUPPORTED in message and "not retried" in message
    assert "token_param: max_completion_tokens" in message  # what to change
    assert SECRET not in message and "Bearer" not in message


def test_an_echoed_key_is_masked_and_exhausted_retries_say_why(server, provider) -> None:
    server.script = [{"status": 401}]
    server.error_message = f"Incorrect API key provided: {SECRET}."
    with pytest.raises(LLMError) as error:
        provider.complete("p")
    assert "Incorrect API key provided: ***." in str(error.value)
    assert SECRET not in str(error.value)
    server.script, server.error_message = [{"status": 503}] * 3, "The engine is overloaded"
    with pytest.raises(LLMError, match="after 3 attempts for model 'test-model': The engine is"):
        provider.complete("p")


# max_completion_tokens.


@pytest.mark.parametrize(
    ("model", "setting", "sent"),
    [
        ("gpt-4o", "auto", "max_tokens"),
        ("gpt-4", "auto", "max_tokens"),
        ("o1-mini", "auto", "max_completion_tokens"),
        ("o3", "auto", "max_completion_tokens"),
        ("gpt-5-mini", "auto", "max_completion_tokens"),
        ("openai/o4-mini", "auto", "max_completion_tokens"),
        ("my-azure-deployment", "max_completion_tokens", "max_completion_tokens"),
        ("gpt-5", "max_tokens", "max_tokens"),
    ],
)
def test_token_param(model, setting, sent) -> None:
    assert token_param_for(model, setting) == sent


def test_max_completion_tokens_is_sent_when_configured(server, tfs_eval, tmp_path) -> None:
    entry = {
        "name": "local", "provider": "openai", "model": "served", "base_url": server.url,
        "api_key_env": "NASFLOW_UNSET_KEY", "max_tokens": 40,
        "token_param": "max_completion_tokens",
    }  # fmt: skip
    config = {"llm": {"predictors": [entry], "cache": str(tmp_path / "c.sqlite")}}
    argv = ["llm-pp", "predict", "--config-json", json.dumps(config), "--llm", "local"]
    argv += ["--tfs-eval", str(tfs_eval), "--demonstrations", "3", "--seeds", "1"]
    assert main([*argv, "--out", str(tmp_path / "p.jsonl")]) == 0
    bodies = [request["body"] for request in server.requests]
    assert len(bodies) == 6 and all(b["max_completion_tokens"] == 40 for b in bodies)
    assert not any("max_tokens" in body for body in bodies)


# The estimate: per job before its first request, and over every job of a config.


def _config(tmp_path: Path, server, tfs_eval: Path) -> Path:
    """A demo config whose labelling jobs all go to the fake server (two split seeds with
    six test architectures each, five distillation architectures), priced."""
    own = tmp_path / "results" / "demo" / "tfs_eval"
    shutil.copytree(tfs_eval, own)
    config = yaml.safe_load(Path("config/config.yaml").read_text())
    config.update(chains=["hsnas"], paper={"enabled": False})
    config["tfs"] = {**config.get("tfs", {}), "num_archs": 9, "train_archs": 3}
    config["tfs"]["split_seeds"] = [1, 2]
    entry = {
        "name": "local", "provider": "openai", "model": "served", "base_url": server.url,
        "api_key_env": "NASFLOW_TEST_KEY", "price_prompt": 2.0, "price_completion": 8.0,
    }  # fmt: skip
    config["llm"] = {
        "predictors": [entry], "demonstrations": [3], "robustness_samples": 2,
        "cache": str(tmp_path / "cache.sqlite"),
    }  # fmt: skip
    config["distill"] = {
        **config.get("distill", {}), "llm": "local", "num_archs": 5, "demonstrations": 3,
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _estimate_line(log: str) -> str:
    # a log line: "<date> <time> INFO nasflow.cli.llm_pp: estimate: ..."
    return next(line[line.index("estimate:") :] for line in log.splitlines() if "estimate:" in line)


def _total(out: str) -> int:
    (line,) = [line for line in out.splitlines() if line.startswith("total:")]
    return int(line.split(": ")[2].split()[0])


def test_estimate_counts_the_requests_the_jobs_then_send(
    server, tfs_eval, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("NASFLOW_TEST_KEY", SECRET)
    monkeypatch.setattr(progress_module, "PROGRESS_INTERVAL_S", 0.0)  # a line per architecture
    config_path = _config(tmp_path, server, tfs_eval)
    monkeypatch.chdir(tmp_path)
    assert main(["llm-pp", "estimate", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    # 12 predictions; robustness 12 x 2 of which sample 0 is the predictions' (12 shared);
    # 5 distillation labels per split seed.
    assert _total(out) == 12 + 12 + 10 and "12 sent by a job above" in out
    assert "$" in out and not server.requests  # priced, nothing sent
    jobs = planned_jobs(resolve_config([config_path]), None)
    assert [job.command for job in jobs] == ["predict", "predict", "dataset", "dataset"]
    for number, job in enumerate(jobs):
        before = len(server.requests)
        group = ["llm-pp", "predict"] if job.command == "predict" else ["distill", "dataset"]
        assert main([*group, *job.argv, "--out", str(tmp_path / f"job{number}.out")]) == 0
        log = capsys.readouterr().err
        sent = len(server.requests) - before
        assert f"{sent} requests to send" in _estimate_line(log)  # before any request
        progress = [line for line in log.splitlines() if "architectures, " in line]
        assert len(progress) > 2 and f"{sent} requests sent" in progress[-1]
        assert "\r" not in log and SECRET not in log
    assert len(server.requests) == 34
    # Everything is cached now: the estimate says zero, and rerunning sends nothing.
    assert main(["llm-pp", "estimate", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert _total(out) == 0 and "$0.0000" in out
    job = jobs[0]
    assert main(["llm-pp", "predict", *job.argv, "--out", str(tmp_path / "again.out")]) == 0
    assert "0 requests to send, 12 replies cached" in capsys.readouterr().err
    assert len(server.requests) == 34
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_estimate_line_prices_tokens(server, tfs_eval, tmp_path, capsys) -> None:
    argv = ["llm-pp", "predict", "--tfs-eval", str(tfs_eval), "--demonstrations", "3"]
    argv += ["--provider", "openai", "--model", "m", "--base-url", server.url]
    argv += ["--api-key-env", "NASFLOW_UNSET_KEY", "--cache", str(tmp_path / "c.sqlite")]
    argv += ["--price-prompt", "1000000", "--price-completion", "0", "--max-tokens", "30"]
    assert main([*argv, "--out", str(tmp_path / "p.jsonl")]) == 0
    line = _estimate_line(capsys.readouterr().err)
    tokens = int(line.split("~")[1].split()[0].replace(",", ""))
    assert "12 requests to send" in line and "at most 360 completion tokens" in line
    assert f"estimated cost ${tokens:,.4f}" in line and "(chars/4)" in line  # 1 USD/token


# Distillation labels through the Batch API.


def _dataset_argv(server, tfs_eval: Path, tmp_path: Path) -> list[str]:
    argv = ["distill", "dataset", "--tfs-eval", str(tfs_eval), "--task", "demo", "--seed", "1"]
    argv += ["--n", "8", "--demonstrations", "3", "--provider", "openai", "--model", "m"]
    argv += ["--base-url", server.url, "--api-key-env", "NASFLOW_TEST_KEY"]
    return [*argv, "--cache", str(tmp_path / "c.sqlite"), "--out", str(tmp_path / "d.csv")]


def test_batch_api_labels_through_the_cache(server, tfs_eval, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NASFLOW_TEST_KEY", SECRET)
    monkeypatch.setattr(batch_module, "POLL_S", 0.01)
    server.script = [{"reply": "no idea"}]  # one reply without a number: a second batch
    argv = _dataset_argv(server, tfs_eval, tmp_path)
    assert main([*argv, "--batch-api"]) == 0
    log = capsys.readouterr().err
    assert len(server.batches) == 2 and len(server.requests) == 9
    assert all(request["batch"] for request in server.requests)  # none sent directly
    assert server.requests[0]["body"]["max_tokens"] == 25
    frame = pd.read_csv(tmp_path / "d.csv")
    assert len(frame) == 8 and (frame["prediction"] == 27.5).all()
    usage = json.loads((tmp_path / "d.usage.json").read_text())
    assert usage["batch_api"] == {
        "batches": 2, "resumed": 0, "requests": 9, "replies": 9, "errors": 0,
    }  # fmt: skip
    assert "in_progress" in log and SECRET not in log
    assert main([*argv, "--batch-api"]) == 0  # a rerun pays nothing
    assert len(server.batches) == 2 and len(server.requests) == 9


def test_a_killed_batch_job_resumes_its_batch(server, tfs_eval, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NASFLOW_TEST_KEY", SECRET)
    provider = OpenAIProvider("m", base_url=server.url, api_key_env="NASFLOW_TEST_KEY")
    prompts = [f"architecture {i}" for i in range(5)]

    def killed(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_module, "_wait", killed)
    with pytest.raises(KeyboardInterrupt):
        run_batches(provider, ReplyCache(tmp_path / "c.sqlite"), prompts, PredictSettings(), print)
    assert len(server.batches) == 1 and not server.requests  # created, still running
    monkeypatch.setattr(batch_module, "_wait", lambda seconds: None)
    cache = ReplyCache(tmp_path / "c.sqlite")
    summary = run_batches(provider, cache, prompts, PredictSettings(), print)
    assert summary.resumed == 1 and summary.replies == 5 and len(server.batches) == 1
    assert len(server.requests) == 5  # the same batch's replies, paid once
    results = [predict(provider, cache, prompt, PredictSettings()) for prompt in prompts]
    assert all(r.value == 27.5 and r.cache_hits == 1 for r in results)


def test_batch_errors_fall_back_to_direct_requests(server, tfs_eval, tmp_path, monkeypatch):
    monkeypatch.setenv("NASFLOW_TEST_KEY", SECRET)
    monkeypatch.setattr(batch_module, "POLL_S", 0.01)
    server.script = [{"status": 500}]  # the batch's first line fails: sent directly after
    argv = [*_dataset_argv(server, tfs_eval, tmp_path), "--parse-retries", "0"]
    assert main([*argv, "--batch-api"]) == 0
    assert [bool(request["batch"]) for request in server.requests] == [True] * 8 + [False]
    usage = json.loads((tmp_path / "d.usage.json").read_text())
    assert usage["batch_api"]["errors"] == 1 and usage["requests"] == 1


def test_batch_api_needs_the_openai_provider(tfs_eval, tmp_path, capsys) -> None:
    argv = ["distill", "dataset", "--tfs-eval", str(tfs_eval), "--task", "demo", "--seed", "1"]
    argv += ["--n", "4", "--batch-api", "--out", str(tmp_path / "d.csv")]
    assert main(argv) == 2
    assert "needs the openai provider" in capsys.readouterr().err
