"""LLM providers behind one call: `complete(prompt) -> Completion`.

- `offline`: the deterministic nearest-neighbour stand-in (`nasflow.llm.offline`), no network.
- `openai`: the official `openai` SDK (>= 1) against any OpenAI-compatible endpoint (OpenAI,
  Azure OpenAI through its `/openai/v1` base URL, vLLM, Ollama, llama.cpp). The key is read
  from the environment variable the settings name and never stored. Rate limits (429, honouring
  Retry-After), timeouts, connection errors and 5xx are retried with exponential backoff and
  jitter up to `max_retries`; 400/401/403/404 stop at once with a clear message.
"""

from __future__ import annotations

import os
import random
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from nasflow.errors import NasflowError
from nasflow.llm.offline import offline_reply


class LLMError(NasflowError):
    """A request that cannot succeed (bad key, unknown model, bad request) or that kept failing."""


@dataclass(frozen=True)
class Completion:
    """One reply with its usage."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0


class Provider(ABC):
    """Answers prompts; `name`, `endpoint` and `model` go into the cache key."""

    name: str
    endpoint: str
    model: str

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

    def complete(self, prompt: str) -> Completion:
        start = time.perf_counter()
        text = offline_reply(prompt, self.metric, self.k)
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
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float | None = None,
        max_tokens: int = 25,
        timeout_s: float = 60.0,
        max_retries: int = 6,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        requests_per_minute: float | None = None,
        seed: int = 0,
    ):
        import openai

        key = os.environ.get(api_key_env)
        if not key:
            if base_url is None:
                raise LLMError(
                    f"the openai provider needs an API key in ${api_key_env} (set it in the "
                    "environment; it is never read from config files)"
                )
            key = "not-needed"  # local servers (vLLM, Ollama, llama.cpp) ignore it
        self.model = model
        self.endpoint = base_url or "https://api.openai.com/v1"
        self.params: dict[str, Any] = {"max_tokens": max_tokens}
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
        )
        for attempt in range(self.max_retries + 1):
            self.limiter.wait()
            start = time.perf_counter()
            try:
                response = self._client.chat.completions.create(
                    model=self.model,
                    messages=[{"role": "user", "content": prompt}],
                    **self.params,
                )
            except fatal as error:
                status = getattr(error, "status_code", "?")
                raise LLMError(
                    f"{self.endpoint} refused the request for model {self.model!r} "
                    f"(HTTP {status}, {type(error).__name__}); not retried"
                ) from None
            except retryable as error:
                if attempt == self.max_retries:
                    raise LLMError(
                        f"{self.endpoint}: {type(error).__name__} after {attempt + 1} attempts"
                    ) from None
                time.sleep(self._delay(attempt, error))
                continue
            usage = response.usage
            return Completion(
                text=response.choices[0].message.content or "",
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
                latency_s=time.perf_counter() - start,
            )
        raise AssertionError("unreachable")
