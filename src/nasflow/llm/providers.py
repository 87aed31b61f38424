"""LLM providers behind one call: `complete(prompt) -> Completion`.

- `offline`: the deterministic nearest-neighbour stand-in (`nasflow.llm.offline`), no network.
- `openai`: the official `openai` SDK (>= 1) against any OpenAI-compatible endpoint (OpenAI,
  Azure OpenAI through its `/openai/v1` base URL, vLLM, Ollama, llama.cpp). The key is read
  from the environment variable the settings name and never stored; it is required unless the
  base URL is a local server (`nasflow.llm.keys.needs_api_key`), and a 401/403 names the variable.
  Rate limits (429, honouring Retry-After), timeouts, connection errors and 5xx are retried with
  exponential backoff and jitter up to `max_retries`; 400/401/403/404 stop at once. Every error
  says the HTTP status, the request's model and the server's own message (the error body's
  `message`, with the key masked should a server echo it; never the request's headers).
  The reply-length cap goes out as `max_tokens` or, for models that refuse it (OpenAI's
  reasoning models o1/o3/o4 and GPT-5), `max_completion_tokens` (`token_param`).

Every request sent is counted, timed-out and failed attempts included (providers usually bill a
request that timed out on the client): each `Completion` says how many attempts it took, and
`Provider.attempt_log` tallies every attempt of the process by outcome.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nasflow.core.errors import NasflowError
from nasflow.llm.keys import DEFAULT_API_KEY_ENV, needs_api_key
from nasflow.llm.offline import offline_reply

REPLY = "reply"
TIMEOUT = "timeout"
TOKEN_PARAMS = ("auto", "max_tokens", "max_completion_tokens")
# Model families whose chat completions refuse `max_tokens` (OpenAI's reasoning models and
# GPT-5): `token_param: auto` sends `max_completion_tokens` to them. Matched on the model name
# after any `provider/` prefix; any other name (Azure deployment names included) gets
# `max_tokens` unless the setup says otherwise.
COMPLETION_TOKEN_MODELS = re.compile(r"^(o\d|gpt-5)", re.IGNORECASE)
SERVER_MESSAGE_CHARS = 500


def token_param_for(model: str, token_param: str = "auto") -> str:
    """The request parameter that caps the reply's length: `token_param` itself, or for `auto`
    `max_completion_tokens` when the model's family requires it (`COMPLETION_TOKEN_MODELS`),
    else `max_tokens` (what every OpenAI-compatible server accepts)."""
    if token_param not in TOKEN_PARAMS:
        raise LLMError(f"token_param {token_param!r}: choose one of {', '.join(TOKEN_PARAMS)}")
    if token_param != "auto":
        return token_param
    name = model.rsplit("/", 1)[-1]
    return "max_completion_tokens" if COMPLETION_TOKEN_MODELS.match(name) else "max_tokens"


def server_message(error: Exception, secret: str | None = None) -> str:
    """What the server said in an error response: the body's `message` (with `code`/`param`
    when given), else its text, on one line and at most `SERVER_MESSAGE_CHARS` characters;
    `secret` (the API key) masked should the server echo it. Empty when there is no body."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        text = str(body.get("message") or "")
        extra = [f"{name} {body[name]!r}" for name in ("code", "param") if body.get(name)]
        if extra:
            text = f"{text} ({', '.join(extra)})" if text else ", ".join(extra)
        if not text:
            text = str(body)
    elif body is not None:
        text = str(body)
    else:
        text = ""
    text = " ".join(text.split())
    if secret:
        text = text.replace(secret, "***")
    if len(text) > SERVER_MESSAGE_CHARS:
        text = text[: SERVER_MESSAGE_CHARS - 3] + "..."
    return text


class LLMError(NasflowError):
    """A request that cannot succeed (bad key, unknown model, bad request) or that kept failing."""


@dataclass(frozen=True)
class Completion:
    """One reply with its usage; `attempts` requests were sent for it (the last one answered),
    `timeouts` of the others timed out and `errors` failed otherwise (429, 5xx, connection)."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    attempts: int = 1
    timeouts: int = 0
    errors: int = 0


@dataclass
class AttemptLog:
    """Every request a provider sent in this process, by outcome (thread-safe): `reply`,
    `timeout`, or the error (`HTTP 429`, `HTTP 500`, `connection error`, ...)."""

    counts: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, outcome: str) -> None:
        with self._lock:
            self.counts[outcome] += 1

    def summary(self) -> dict[str, Any]:
        """`sent` (every attempt), `replied`, `timeouts`, and `errors` by kind."""
        with self._lock:
            counts = dict(self.counts)
        errors = {k: v for k, v in sorted(counts.items()) if k not in (REPLY, TIMEOUT)}
        return {
            "sent": sum(counts.values()),
            "replied": counts.get(REPLY, 0),
            "timeouts": counts.get(TIMEOUT, 0),
            "errors": errors,
        }


class Provider(ABC):
    """Answers prompts; `name`, `endpoint` and `model` go into the cache key."""

    name: str
    endpoint: str
    model: str
    attempt_log: AttemptLog

    @abstractmethod
    def complete(self, prompt: str) -> Completion:
        """The reply to `prompt` (a single user message)."""


class OfflineProvider(Provider):
    """The offline stand-in: a nearest-neighbour estimate from the prompt's demonstrations."""

    name = "offline"
    endpoint = "local"

    def __init__(self, k: int = 3, metric: str = "BLEU"):
        self.k = k
        self.metric = metric
        self.model = f"nearest-neighbour-k{k}"
        self.attempt_log = AttemptLog()

    def complete(self, prompt: str) -> Completion:
        start = time.perf_counter()
        text = offline_reply(prompt, self.metric, self.k)
        self.attempt_log.record(REPLY)
        return Completion(text, latency_s=time.perf_counter() - start)


class RateLimiter:
    """At most `per_minute` request starts in any 60 s window (thread-safe)."""

    def __init__(self, per_minute: float | None):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        time.sleep(max(0.0, start - now))


class OpenAIProvider(Provider):
    """Chat completions through the `openai` SDK against `base_url` (None = api.openai.com)."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = DEFAULT_API_KEY_ENV,
        temperature: float | None = None,
        max_tokens: int = 25,
        token_param: str = "auto",
        timeout_s: float = 60.0,
        max_retries: int = 6,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        requests_per_minute: float | None = None,
        seed: int = 0,
    ):
        import openai

        key = os.environ.get(api_key_env)
        self.model = model
        self.endpoint = base_url or "https://api.openai.com/v1"
        self.api_key_env = api_key_env
        self.key_set = bool(key)
        if not key:
            if needs_api_key(base_url):
                raise LLMError(
                    f"the openai provider needs an API key in ${api_key_env} for "
                    f"{self.endpoint} (set it in the environment; it is never read from config "
                    "files; only a local server, on localhost or plain http to a private host, "
                    "may run without one)"
                )
            key = "not-needed"  # local servers (vLLM, Ollama, llama.cpp) ignore it
        self.attempt_log = AttemptLog()
        self._secret = key if self.key_set else None  # masked in error messages
        self.max_tokens = max_tokens
        self.token_param = token_param_for(model, token_param)
        self.params: dict[str, Any] = {self.token_param: max_tokens}
        if temperature is not None:
            self.params["temperature"] = temperature
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.limiter = RateLimiter(requests_per_minute)
        self._jitter = random.Random(seed)
        self._client = openai.OpenAI(
            api_key=key, base_url=base_url, timeout=timeout_s, max_retries=0
        )
        self._openai = openai

    @property
    def client(self):
        """The SDK client (for the Batch API: `client.files`, `client.batches`)."""
        return self._client

    def refused(self, what: str, error: Exception) -> LLMError:
        """The error to raise when the server refused `what`: the HTTP status, the model and
        the server's message (never the key)."""
        status = getattr(error, "status_code", None)
        said = server_message(error, self._secret)
        kind = f"HTTP {status}, {type(error).__name__}" if status else type(error).__name__
        return LLMError(
            f"{self.endpoint}: {what} for model {self.model!r} failed ({kind})"
            + (f": {said}" if said else "")
            + (self._key_hint(status) if status else "")
        )

    def _delay(self, attempt: int, error: Exception) -> float:
        response = getattr(error, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                return min(float(retry_after), self.max_backoff_s)
            except ValueError:
                pass
        base = min(self.backoff_s * 2**attempt, self.max_backoff_s)
        return base * (0.5 + self._jitter.random())  # jitter: 0.5x-1.5x

    def complete(self, prompt: str) -> Completion:
        errors = self._openai
        retryable = (
            errors.RateLimitError,
            errors.APITimeoutError,
            errors.APIConnectionError,
            errors.InternalServerError,
        )
        fatal = (
            errors.AuthenticationError,
            errors.PermissionDeniedError,
            errors.NotFoundError,
            errors.BadRequestError,
            errors.APIStatusError,  # any other 4xx: not retried either
        )
        timeouts = failures = 0
        for attempt in range(self.max_retries + 1):
            self.limiter.wait()
            start = time.perf_counter()
            try:
                response = self._client.chat.completions.create(
                    model=self.model,
                    messages=[{"role": "user", "content": prompt}],
                    **self.params,
                )
            except retryable as error:
                if isinstance(error, errors.APITimeoutError):
                    self.attempt_log.record(TIMEOUT)
                    timeouts += 1
                else:
                    status = getattr(error, "status_code", None)
                    self.attempt_log.record(f"HTTP {status}" if status else "connection error")
                    failures += 1
                if attempt == self.max_retries:
                    said = server_message(error, self._secret)
                    raise LLMError(
                        f"{self.endpoint}: {type(error).__name__} after {attempt + 1} attempts "
                        f"for model {self.model!r}" + (f": {said}" if said else "")
                    ) from None
                time.sleep(self._delay(attempt, error))
                continue
            except fatal as error:  # after retryable: 429 and 5xx are APIStatusErrors too
                status = getattr(error, "status_code", "?")
                self.attempt_log.record(f"HTTP {status}")
                said = server_message(error, self._secret)
                raise LLMError(
                    f"{self.endpoint} refused the request for model {self.model!r} "
                    f"(HTTP {status}, {type(error).__name__})"
                    + (f": {said}" if said else "")
                    + "; not retried"
                    + self._key_hint(status)
                    + self._token_hint(said)
                ) from None
            self.attempt_log.record(REPLY)
            usage = response.usage
            return Completion(
                text=response.choices[0].message.content or "",
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
                latency_s=time.perf_counter() - start,
                attempts=attempt + 1,
                timeouts=timeouts,
                errors=failures,
            )
        raise AssertionError("unreachable")

    def _token_hint(self, said: str) -> str:
        """What to change when the server refuses the reply-length parameter we sent."""
        sent = self.token_param
        other = "max_tokens" if sent == "max_completion_tokens" else "max_completion_tokens"
        if sent in said and other in said:
            return (
                f"; this model wants `{other}`: set `token_param: {other}` in its "
                "llm.predictors entry (or pass --token-param)"
            )
        return ""

    def _key_hint(self, status: Any) -> str:
        """What a 401/403 says about the key: the variable it came from, never the key."""
        if status not in (401, 403):
            return ""
        if self.key_set:
            return (
                f"; the server rejected the API key read from ${self.api_key_env} (check that "
                "variable: the right key for this endpoint, with access to the model)"
            )
        return (
            f"; ${self.api_key_env} is not set and this server wants a key: set it in the "
            "environment"
        )
