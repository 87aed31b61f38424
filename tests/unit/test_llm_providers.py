"""The openai provider against a local OpenAI-compatible server, the cache and predictions."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nasflow.llm.cache import CachedReply, ReplyCache, RequestKey
from nasflow.llm.predict import PredictSettings, predict, predict_many
from nasflow.llm.prompts import Demonstration, PromptTemplate, TaskInfo, render_prompt
from nasflow.llm.providers import LLMError, OfflineProvider, OpenAIProvider
from nasflow.space import get_space

SECRET = "sk-test-SECRET-4242"


class Server:
    """Chat completions on 127.0.0.1; `script` holds the next responses, else `default`."""

    def __init__(self) -> None:
        self.script: list[dict] = []
        self.default = "27.5"
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.requests.append({"body": body, "auth": self.headers.get("Authorization")})
                    step = owner.script.pop(0) if owner.script else {"reply": owner.default}
                time.sleep(step.get("sleep", 0))
                status = step.get("status", 200)
                if status == 200:
                    payload = {
                        "id": "c1", "object": "chat.completion", "created": 0,
                        "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": step["reply"]}}],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
                    }  # fmt: skip
                else:
                    payload = {"error": {"message": f"status {status}", "type": "test"}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in step.get("headers", {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.httpd.shutdown()


@pytest.fixture
def provider(server: Server, monkeypatch) -> OpenAIProvider:
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
