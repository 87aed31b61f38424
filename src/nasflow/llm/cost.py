"""What a labelling job will send and cost, from the reply cache, before any request.

A request is needed for every (prompt, sample) whose reply is not cached
(`nasflow.llm.predict.missing_requests`: walking the parse attempts as `predict` does, a cached
reply with a number ends the walk, a cached reply without one moves to the next attempt, and
the first attempt not cached is one request). Replies that come back without a number add up
to `parse_retries` more each (not counted: they cannot be known before).

Prompt tokens are counted with `tiktoken` when it is installed (the model's encoding, else
`o200k_base`), else estimated as characters / 4 (rounded up; OpenAI's rule of thumb for English
text, within about 10-20 % for these prompts), plus `CHAT_OVERHEAD_TOKENS` per request for the
chat message wrapping. Completion tokens are an upper bound: `max_tokens` per request. The cost
uses the setup's `price_prompt`/`price_completion` (USD per million tokens, from the config:
nasflow keeps no price table, since prices change).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from nasflow.llm.cache import ReplyCache
from nasflow.llm.predict import PredictSettings, missing_requests
from nasflow.llm.providers import Provider

CHAT_OVERHEAD_TOKENS = 7
"""Tokens a chat request adds around one user message (role and message delimiters)."""


def token_counter(model: str) -> tuple[Callable[[str], int], str]:
    """A function counting the tokens of a text for `model`, and its name: tiktoken's
    encoding when tiktoken is installed and has it, else `chars/4`."""
    try:
        import tiktoken

        try:
            encoding = tiktoken.encoding_for_model(model)
        except KeyError:
            encoding = tiktoken.get_encoding("o200k_base")
        return (lambda text: len(encoding.encode(text))), f"tiktoken {encoding.name}"
    except Exception:  # not installed, or its encoding file cannot be fetched offline
        return (lambda text: -(-len(text) // 4)), "chars/4"


@dataclass(frozen=True)
class Estimate:
    """Requests a job will send, replies it finds cached, tokens and cost (None: no prices)."""

    label: str
    requests: int
    cached: int
    shared: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    tokenizer: str
    cap: str  # how completion tokens are bounded, e.g. "max_tokens 25"
    parse_retries: int
    priced: bool

    def line(self) -> str:
        """One line for the job's log and for `nasflow llm-pp estimate`."""
        if self.cost_usd is None:
            cost = "cost unknown (set price_prompt and price_completion of this setup)"
        else:
            cost = f"estimated cost ${self.cost_usd:,.4f}" if self.priced else "cost $0"
        shared = f", {self.shared} sent by a job above" if self.shared else ""
        text = (
            f"estimate: {self.label}: {self.requests} requests to send, {self.cached} replies "
            f"cached{shared}; ~{self.prompt_tokens:,} prompt tokens ({self.tokenizer}), at most "
            f"{self.completion_tokens:,} completion tokens ({self.cap}); {cost}"
        )
        if self.requests and self.parse_retries:
            text += f"; a reply without a number adds up to {self.parse_retries} retries"
        return text


def estimate_requests(
    label: str,
    provider: Provider,
    cache: ReplyCache,
    prompts: Sequence[str],
    settings: PredictSettings,
    prices_per_million: Mapping[str, float] | None,
    seen: set[str] | None = None,
) -> Estimate:
    """The `Estimate` of predicting every prompt of `prompts` (module doc). With `seen` (the
    request keys counted for earlier jobs, updated here), a request an earlier job sends first
    is counted there only (`shared`), e.g. sample 0 of the robustness run."""
    count, tokenizer = token_counter(provider.model)
    keys, cached = missing_requests(provider, cache, prompts, settings)
    shared = 0
    if seen is not None:
        mine = [key for key in keys if key.digest not in seen]
        shared = len(keys) - len(mine)
        seen.update(key.digest for key in mine)
        keys = mine
    tokens: dict[str, int] = {}
    for key in keys:
        if key.prompt not in tokens:
            tokens[key.prompt] = count(key.prompt) + CHAT_OVERHEAD_TOKENS
    requests = len(keys)
    prompt_tokens = sum(tokens[key.prompt] for key in keys)
    max_tokens = int(getattr(provider, "max_tokens", 0) or 0)
    param = getattr(provider, "token_param", "max_tokens")
    free = provider.name == "offline"
    completion_tokens = 0 if free else requests * max_tokens
    cost: float | None
    if free:
        cost = 0.0
    elif prices_per_million:
        cost = (
            prompt_tokens * prices_per_million.get("prompt", 0.0)
            + completion_tokens * prices_per_million.get("completion", 0.0)
        ) / 1e6
    else:
        cost = None
    return Estimate(
        label=label,
        requests=requests,
        cached=cached,
        shared=shared,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=cost,
        tokenizer=tokenizer,
        cap="offline stand-in, no tokens billed" if free else f"{param} {max_tokens}",
        parse_retries=settings.parse_retries,
        priced=not free,
    )
