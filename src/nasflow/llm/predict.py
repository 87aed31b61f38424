"""LLM-PP predictions through the cache: samples, bounded parse retries, aggregation, and
progress lines while they come in (`nasflow.llm.progress`)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from nasflow.llm.cache import CachedReply, ReplyCache, RequestKey
from nasflow.llm.parsing import parse_prediction
from nasflow.llm.progress import Progress
from nasflow.llm.providers import Completion, Provider

AGGREGATES = {"mean": statistics.fmean, "median": statistics.median}


@dataclass(frozen=True)
class PredictSettings:
    """How replies become one prediction."""

    samples: int = 1
    aggregate: str = "mean"
    parse_retries: int = 3
    low: float = 0.0
    high: float = 100.0
    concurrency: int = 4


@dataclass
class Prediction:
    """One architecture's prediction; `value` is None when every sample failed.

    `sample_values` holds each sample's parsed value (None where its attempts all failed), the
    spread that LLM-PP's robustness is measured on. `latencies_s` is aligned with `replies`: each
    reply's request latency as the cache recorded it when the reply was first asked for (a reply
    served from the cache keeps its original request's latency; None where none was recorded).
    """

    value: float | None
    replies: list[str] = field(default_factory=list)
    sample_values: list[float | None] = field(default_factory=list)
    latencies_s: list[float | None] = field(default_factory=list)
    requests: int = 0
    timeouts: int = 0
    errors: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def failed(self) -> bool:
        return self.value is None


def request_key(provider: Provider, prompt: str, sample: int, attempt: int) -> RequestKey:
    """The cache key of one request: the provider, its endpoint, model and sampling parameters,
    the prompt, the sample index and the parse attempt."""
    params = dict(getattr(provider, "params", {}))
    return RequestKey(
        provider.name, provider.endpoint, provider.model, prompt, params, sample, attempt
    )


def missing_requests(
    provider: Provider, cache: ReplyCache, prompts: Sequence[str], settings: PredictSettings
) -> tuple[list[RequestKey], int]:
    """The requests `predict_many` would send next for `prompts` (one per (prompt, sample)
    without a usable cached reply: its first attempt not cached) and the cached replies it
    would read on the way, walking the parse attempts as `predict` does. Replies that come back
    without a number add retries that cannot be known before."""
    keys: list[RequestKey] = []
    cached = 0
    for prompt in dict.fromkeys(prompts):  # a repeated prompt shares its replies
        for sample in range(settings.samples):
            for attempt in range(settings.parse_retries + 1):
                key = request_key(provider, prompt, sample, attempt)
                entry = cache.get(key)
                if entry is None:
                    keys.append(key)
                    break
                cached += 1
                if entry.value is not None:
                    break
    return keys, cached


def predict(
    provider: Provider, cache: ReplyCache, prompt: str, settings: PredictSettings
) -> Prediction:
    """Ask `settings.samples` times; a reply without a number in range is retried up to
    `parse_retries` times (each attempt cached under its own key), then counted as failed."""
    result = Prediction(value=None)
    values: list[float] = []
    for sample in range(settings.samples):
        result.sample_values.append(None)
        for attempt in range(settings.parse_retries + 1):
            key = request_key(provider, prompt, sample, attempt)
            sent: list[Completion] = []

            def ask(sent: list[Completion] = sent) -> CachedReply:
                completion = provider.complete(prompt)
                sent.append(completion)
                value = parse_prediction(completion.text, settings.low, settings.high)
                return CachedReply(
                    completion.text, value, completion.prompt_tokens,
                    completion.completion_tokens, completion.latency_s,
                )  # fmt: skip

            # Asked at most once across processes; the stored (first) reply is the one used.
            entry, _ = cache.fetch(key, ask)
            if sent:
                result.requests += sent[0].attempts
                result.timeouts += sent[0].timeouts
                result.errors += sent[0].errors
            else:
                result.cache_hits += 1
            result.replies.append(entry.reply)
            result.latencies_s.append(entry.latency_s)
            result.prompt_tokens += entry.prompt_tokens or 0
            result.completion_tokens += entry.completion_tokens or 0
            if entry.value is not None:
                values.append(entry.value)
                result.sample_values[-1] = entry.value
                break
    if values:
        result.value = float(AGGREGATES[settings.aggregate](values))
    return result


def predict_many(
    provider: Provider,
    cache: ReplyCache,
    prompts: Sequence[str],
    settings: PredictSettings,
    progress: Progress | None = None,
) -> list[Prediction]:
    """`predict` for every prompt, `settings.concurrency` requests in flight, in input order;
    each finished prompt is counted in `progress` (which prints its periodic lines)."""

    def one(prompt: str) -> Prediction:
        result = predict(provider, cache, prompt, settings)
        if progress is not None:
            progress.update(result)
        return result

    if settings.concurrency <= 1:
        return [one(prompt) for prompt in prompts]
    with ThreadPoolExecutor(settings.concurrency) as pool:
        return list(pool.map(one, prompts))
