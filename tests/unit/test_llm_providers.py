"""The openai provider against a local OpenAI-compatible server, the cache and predictions."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter
from pathlib import Path

import pytest

from nasflow.cli import main
from nasflow.llm.cache import CachedReply, ReplyCache, RequestKey
from nasflow.llm.keys import needs_api_key
from nasflow.llm.predict import PredictSettings, predict, predict_many
from nasflow.llm.prompts import Demonstration, PromptTemplate, TaskInfo, render_prompt
from nasflow.llm.providers import LLMError, OfflineProvider, OpenAIProvider
from nasflow.predictors.llm import PromptSettings, usage_summary
from nasflow.space.hat import get_space

SECRET = "sk-test-SECRET-4242"


@pytest.fixture
def provider(server, monkeypatch) -> OpenAIProvider:
    monkeypatch.setenv("NASFLOW_TEST_KEY", SECRET)
    return OpenAIProvider(
        "test-model", base_url=server.url, api_key_env="NASFLOW_TEST_KEY", timeout_s=0.5,
        max_retries=3, backoff_s=0.01, temperature=0.0,
    )  # fmt: skip


def test_replies_are_parsed_with_usage_and_the_key_is_sent(server, provider, tmp_path) -> None:
    server.script = [{"reply": "I would estimate a BLEU of 26.8 for it."}]
    result = predict(provider, ReplyCache(tmp_path / "c.sqlite"), "prompt", PredictSettings())
    assert result.value == 26.8 and result.requests == 1 and result.cache_hits == 0
    assert result.prompt_tokens == 11 and result.completion_tokens == 3
    sent = server.requests[0]
    assert sent["auth"] == f"Bearer {SECRET}"
    assert sent["body"]["messages"] == [{"role": "user", "content": "prompt"}]
    assert sent["body"]["max_tokens"] == 25 and sent["body"]["temperature"] == 0.0


def test_no_number_is_retried_then_recorded_as_failed(server, provider, tmp_path) -> None:
    server.default = "I cannot tell."
    settings = PredictSettings(parse_retries=2)
    result = predict(provider, ReplyCache(tmp_path / "c.sqlite"), "p", settings)
    assert result.failed and len(server.requests) == 3
    assert result.replies == ["I cannot tell."] * 3
    server.default = "250"  # absurd: outside [0, 100]
    assert predict(provider, ReplyCache(tmp_path / "d.sqlite"), "p", settings).failed


@pytest.mark.parametrize(
    "first",
    [
        {"status": 429, "headers": {"Retry-After": "0"}},
        {"status": 500},
        {"status": 503},
        {"sleep": 1.0, "reply": "1.0"},  # longer than the 0.5 s client timeout
    ],
    ids=["429", "500", "503", "timeout"],
)
def test_transient_errors_are_retried(server, provider, tmp_path, first) -> None:
    server.script = [first, {"reply": "24.1"}]
    result = predict(provider, ReplyCache(tmp_path / "c.sqlite"), "p", PredictSettings())
    assert result.value == 24.1 and len(server.requests) == 2


def test_persistent_errors_stop_after_the_bound(server, provider, tmp_path) -> None:
    server.script = [{"status": 500}] * 10
    with pytest.raises(LLMError, match="InternalServerError after 4 attempts"):
        predict(provider, ReplyCache(tmp_path / "c.sqlite"), "p", PredictSettings())
    assert len(server.requests) == 4


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_non_retryable_errors_stop_at_once(server, provider, tmp_path, status) -> None:
    server.script = [{"status": status}]
    with pytest.raises(LLMError, match=f"HTTP {status}.*not retried") as error:
        predict(provider, ReplyCache(tmp_path / "c.sqlite"), "p", PredictSettings())
    assert len(server.requests) == 1 and SECRET not in str(error.value)


def test_rerun_is_served_from_the_cache(server, provider, tmp_path) -> None:
    cache_path = tmp_path / "cache.sqlite"
    settings = PredictSettings(samples=3, aggregate="median", concurrency=3)
    server.script = [{"reply": "x"}, {"reply": "20"}, {"reply": "30"}]
    prompts = [f"prompt {i}" for i in range(4)]
    first = predict_many(provider, ReplyCache(cache_path), prompts, settings)
    asked = len(server.requests)
    assert asked == 4 * 3 + 1  # one sample of one prompt needed a parse retry
    again = predict_many(provider, ReplyCache(cache_path), prompts, settings)
    assert len(server.requests) == asked  # zero API calls
    assert [p.value for p in again] == [p.value for p in first]
    assert all(p.requests == 0 and p.cache_hits >= 3 for p in again)
    for path in tmp_path.iterdir():
        assert SECRET.encode() not in path.read_bytes()


def test_missing_key_is_named(monkeypatch) -> None:
    monkeypatch.delenv("NASFLOW_NO_SUCH_KEY", raising=False)
    with pytest.raises(LLMError, match=r"\$NASFLOW_NO_SUCH_KEY"):
        OpenAIProvider("gpt-4", api_key_env="NASFLOW_NO_SUCH_KEY")


def _write_rows(path: str, worker: int) -> None:
    cache = ReplyCache(path)
    for i in range(40):
        key = RequestKey("p", "e", "m", f"prompt {worker}-{i}", {}, 0)
        cache.put(key, CachedReply(f"{i}", float(i), 1, 1, 0.0))


def test_concurrent_writers_keep_every_reply(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    ReplyCache(path).close()
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_rows, args=(path, w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    cache = ReplyCache(path)
    assert len(cache) == 160
    assert cache.get(RequestKey("p", "e", "m", "prompt 3-39", {}, 0)).value == 39.0


def test_offline_provider_through_the_same_path(tmp_path: Path) -> None:
    space = get_space("hat-wmt")
    demos = [
        Demonstration(arch, 3.0, 20.0 + i)
        for i, arch in enumerate([space.smallest(), space.largest()])
    ]
    task = TaskInfo("WMT'14", "English", "German")
    prompt = render_prompt(PromptTemplate.load(), "full", task, [], demos, demos[1])
    cache = ReplyCache(tmp_path / "c.sqlite")
    result = predict(OfflineProvider(), cache, prompt, PredictSettings())
    assert result.value == 21.0 and result.requests == 1  # the test arch is a demonstration
    assert predict(OfflineProvider(), cache, prompt, PredictSettings()).cache_hits == 1


# The API key: required unless the endpoint is a local server; a 401/403 names the variable.


@pytest.mark.parametrize(
    ("base_url", "needed"),
    [
        (None, True),  # api.openai.com
        ("https://api.openai.com/v1", True),
        ("https://RESOURCE.openai.azure.com/openai/v1/", True),
        ("https://10.0.0.5/v1", True),  # https to a host that is not loopback: remote
        ("http://example.com:8000/v1", True),
        ("http://8.8.8.8/v1", True),
        ("http://localhost:8000/v1", False),
        ("http://127.0.0.1:11434/v1", False),
        ("http://[::1]:8000/v1", False),
        ("https://localhost:8443/v1", False),
        ("http://10.0.0.5:8000/v1", False),
        ("http://192.168.1.20/v1", False),
        ("http://gpu-node:8000/v1", False),
        ("http://vllm.internal/v1", False),
    ],
)
def test_which_endpoints_need_a_key(base_url, needed) -> None:
    assert needs_api_key(base_url) is needed


def test_remote_base_url_without_key_stops_naming_the_variable(monkeypatch, server) -> None:
    monkeypatch.delenv("NASFLOW_NO_SUCH_KEY", raising=False)
    remote = "https://my-resource.openai.azure.com/openai/v1/"
    with pytest.raises(LLMError, match=r"\$NASFLOW_NO_SUCH_KEY"):
        OpenAIProvider("gpt-4", base_url=remote, api_key_env="NASFLOW_NO_SUCH_KEY")
    local = OpenAIProvider("m", base_url=server.url, api_key_env="NASFLOW_NO_SUCH_KEY")
    assert local.complete("p").text == "27.5"  # a local server runs without one


def test_cli_without_key_stops_before_any_request(monkeypatch, tfs_eval, tmp_path, capsys) -> None:
    monkeypatch.delenv("NASFLOW_NO_SUCH_KEY", raising=False)
    argv = ["llm-pp", "predict", "--tfs-eval", str(tfs_eval), "--provider", "openai"]
    argv += ["--model", "m", "--base-url", "https://llm.example.invalid/v1"]
    argv += ["--api-key-env", "NASFLOW_NO_SUCH_KEY", "--cache", str(tmp_path / "c.sqlite")]
    assert main([*argv, "--out", str(tmp_path / "p.jsonl")]) == 2
    assert "$NASFLOW_NO_SUCH_KEY" in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_names_the_variable_never_the_key(server, provider, tmp_path, status) -> None:
    server.script = [{"status": status}]
    with pytest.raises(LLMError) as error:
        predict(provider, ReplyCache(tmp_path / "c.sqlite"), "p", PredictSettings())
    message = str(error.value)
    assert f"HTTP {status}" in message and "$NASFLOW_TEST_KEY" in message
    assert SECRET not in message and "rejected the API key" in message


def test_local_server_that_wants_a_key_names_the_unset_variable(server, monkeypatch) -> None:
    monkeypatch.delenv("NASFLOW_UNSET_KEY", raising=False)
    local = OpenAIProvider("m", base_url=server.url, api_key_env="NASFLOW_UNSET_KEY")
    server.script = [{"status": 401}]
    with pytest.raises(LLMError, match=r"\$NASFLOW_UNSET_KEY is not set"):
        local.complete("p")


# The reply cache: one request per prompt across processes, the first reply kept.


def _unique_reply(number: int) -> str:
    return f"{20 + number / 100:.2f}"  # every request gets its own value: overwrites show


def _label(path: str, url: str, prompts: list[str], go, out: str) -> None:
    """A labelling job: waits for `go`, then predicts every prompt through the shared cache."""
    provider = OpenAIProvider("m", base_url=url, api_key_env="NASFLOW_UNSET_KEY", timeout_s=10)
    cache = ReplyCache(path)
    go.wait(30)
    results = predict_many(provider, cache, prompts, PredictSettings(concurrency=4))
    records = [{**vars(result), "failed": result.failed} for result in results]
    usage = usage_summary(records, provider, PromptSettings(), PredictSettings())
    Path(out).write_text(json.dumps({"values": [r.value for r in results], "usage": usage}))


def test_two_processes_labelling_the_same_prompts_pay_once(server, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NASFLOW_UNSET_KEY", raising=False)
    server.default, server.delay = _unique_reply, 0.02
    prompts = [f"architecture {i}" for i in range(60)]
    path = str(tmp_path / "shared.sqlite")
    context = multiprocessing.get_context("fork")
    go = context.Event()
    outs = [str(tmp_path / f"job{j}.json") for j in range(2)]
    jobs = [
        context.Process(target=_label, args=(path, server.url, prompts, go, out)) for out in outs
    ]
    for job in jobs:
        job.start()
    go.set()  # both start at once
    for job in jobs:
        job.join(120)
        assert job.exitcode == 0
    asked = Counter(request["body"]["messages"][0]["content"] for request in server.requests)
    assert asked == dict.fromkeys(prompts, 1)  # the server saw each prompt once
    first, second = (json.loads(Path(out).read_text()) for out in outs)
    cache = ReplyCache(path)
    stored = [
        cache.get(RequestKey("openai", server.url, "m", p, {"max_tokens": 25}, 0)) for p in prompts
    ]
    assert first["values"] == second["values"] == [entry.value for entry in stored]
    assert first["usage"]["requests"] + second["usage"]["requests"] == len(server.requests) == 60
    assert first["usage"]["cache_hits"] + second["usage"]["cache_hits"] == 60


def test_a_stored_reply_is_never_replaced(server, provider, tmp_path) -> None:
    cache = ReplyCache(tmp_path / "c.sqlite")
    key = RequestKey("openai", server.url, "test-model", "p", provider.params, 0)
    assert cache.put(key, CachedReply("31.0", 31.0, 1, 1, 0.1))
    assert not cache.put(key, CachedReply("12.0", 12.0, 1, 1, 0.1))
    assert cache.get(key).value == 31.0
    result = predict(provider, cache, "p", PredictSettings())  # served, not asked again
    assert result.value == 31.0 and result.cache_hits == 1 and not server.requests


def _ask_and_hang(path: str, url: str) -> None:
    """A job whose request hangs (the server sleeps): it holds its claim until it is killed."""
    cache = ReplyCache(path)
    cache.claim_ttl_s = 2.0
    provider = OpenAIProvider("m", base_url=url, api_key_env="NASFLOW_UNSET_KEY", timeout_s=30)
    predict(provider, cache, "p", PredictSettings())


def test_a_killed_owners_claim_is_taken_over_after_expiry(server, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NASFLOW_UNSET_KEY", raising=False)
    server.script = [{"sleep": 8.0, "reply": "11.0"}]  # the first request hangs
    path = str(tmp_path / "shared.sqlite")
    job = multiprocessing.get_context("fork").Process(target=_ask_and_hang, args=(path, server.url))
    job.start()
    deadline = time.monotonic() + 30
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.requests) == 1
    cache = ReplyCache(path)
    key = RequestKey("openai", server.url, "m", "p", {"max_tokens": 25}, 0)
    time.sleep(3.0)  # past the 2 s TTL: the owner's heartbeat keeps its claim alive
    assert cache._get_or_claim(key) == (None, None)
    job.kill()
    job.join(10)
    assert cache._get_or_claim(key) == (None, None)  # renewed at most 0.5 s ago: not expired
    provider = OpenAIProvider("m", base_url=server.url, api_key_env="NASFLOW_UNSET_KEY")
    start = time.monotonic()
    result = predict(provider, cache, "p", PredictSettings())
    assert result.value == 27.5 and result.requests == 1  # taken over once expired
    assert time.monotonic() - start < 6.0 and len(server.requests) == 2
    assert cache.get(key).value == 27.5


# usage.json: every request sent, timed-out and failed attempts included.


def test_usage_counts_every_attempt_the_server_saw(server, tfs_eval, tmp_path, monkeypatch):
    monkeypatch.delenv("NASFLOW_UNSET_KEY", raising=False)
    slow = {"sleep": 3.0, "reply": "1.0"}  # past the 1 s client timeout
    server.script = [slow, {"status": 500}, slow, slow]
    out = tmp_path / "pred.jsonl"
    argv = ["llm-pp", "predict", "--tfs-eval", str(tfs_eval), "--demonstrations", "3"]
    argv += ["--provider", "openai", "--model", "m", "--base-url", server.url, "--timeout", "1"]
    argv += ["--api-key-env", "NASFLOW_UNSET_KEY", "--cache", str(tmp_path / "c.sqlite")]
    assert main([*argv, "--out", str(out)]) == 0
    usage = json.loads(out.with_suffix(".usage.json").read_text())
    assert usage["requests"] == len(server.requests) == 12 + 4  # 12 test archs, 4 failed tries
    assert usage["attempts"] == {
        "sent": 16, "replied": 12, "timeouts": 3, "errors": {"HTTP 500": 1},
    }  # fmt: skip
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(r["timeouts"] for r in records) == 3 and sum(r["errors"] for r in records) == 1
