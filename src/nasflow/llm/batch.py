"""Labelling requests through the OpenAI Batch API, into the reply cache.

`run_batches` sends the requests a labelling job would send (`missing_requests`) as one batch:
the JSONL of chat-completion requests (each `custom_id` the request's cache key) is uploaded
with `client.files`, the batch created and polled with `client.batches` (a log line per poll),
and the output file read back; every reply is stored in the reply cache under its key, exactly
as a direct request would store it. Replies without a number need their next parse attempt,
which goes out as a further batch (up to `parse_retries` more). The job then predicts as usual,
every reply served from the cache; what a batch did not answer (its error file) is sent one by
one there. The batch id is kept in the cache file until its replies are stored, so a job killed
while its batch runs picks the same batch up again on its rerun instead of paying twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nasflow.llm.cache import CachedReply, ReplyCache, RequestKey
from nasflow.llm.parsing import parse_prediction
from nasflow.llm.predict import PredictSettings, missing_requests
from nasflow.llm.progress import format_duration
from nasflow.llm.providers import REPLY, OpenAIProvider

ENDPOINT = "/v1/chat/completions"
POLL_S = 30.0
"""Seconds between two looks at a running batch."""
FINISHED = ("completed", "failed", "expired", "cancelled")
_wait = time.sleep  # between polls (tests stop a job here)


@dataclass
class BatchSummary:
    """What the batches of a job did: batches created or resumed, requests in them, replies
    stored, and requests the batches did not answer."""

    batches: int = 0
    resumed: int = 0
    requests: int = 0
    replies: int = 0
    errors: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def run_batches(
    provider: OpenAIProvider,
    cache: ReplyCache,
    prompts: Sequence[str],
    settings: PredictSettings,
    log: Callable[[str], None],
    poll_s: float | None = None,
) -> BatchSummary:
    """Store the replies of every request `prompts` still need in `cache`, batch by batch
    (module doc)."""
    summary = BatchSummary()
    for _ in range(settings.parse_retries + 1):
        keys, _cached = missing_requests(provider, cache, prompts, settings)
        if not keys:
            break
        if not _run_batch(provider, cache, keys, settings, log, summary, poll_s):
            break  # nothing came back: the direct requests take over
    return summary


def _fingerprint(provider: OpenAIProvider, keys: Sequence[RequestKey]) -> str:
    digests = sorted(key.digest for key in keys)
    return hashlib.sha256(json.dumps([provider.endpoint, digests]).encode()).hexdigest()


def _request_line(provider: OpenAIProvider, key: RequestKey) -> str:
    body = {
        "model": provider.model,
        "messages": [{"role": "user", "content": key.prompt}],
        **dict(key.params),
    }
    line = {"custom_id": key.digest, "method": "POST", "url": ENDPOINT, "body": body}
    return json.dumps(line, sort_keys=True)


def _call(provider: OpenAIProvider, what: str, function: Callable[..., Any], *args, **kw) -> Any:
    """`function(*args, **kw)`, an SDK error turned into one line naming the step and the
    server's word."""
    import openai

    try:
        return function(*args, **kw)
    except openai.APIError as error:
        raise provider.refused(what, error) from None


def _run_batch(
    provider: OpenAIProvider,
    cache: ReplyCache,
    keys: Sequence[RequestKey],
    settings: PredictSettings,
    log: Callable[[str], None],
    summary: BatchSummary,
    poll_s: float | None,
) -> int:
    """One batch of `keys`, created or resumed, polled, and its replies stored (their
    number)."""
    client = provider.client
    fingerprint = _fingerprint(provider, keys)
    batch = None
    batch_id = cache.open_batch(fingerprint)
    if batch_id is not None:
        batch = _call(provider, f"batch {batch_id}", client.batches.retrieve, batch_id)
        if batch.status in ("failed", "expired", "cancelled"):
            log(f"batch {batch_id} {batch.status}: creating a new one")
            cache.close_batch(fingerprint)
            batch = None
        else:
            summary.resumed += 1
            log(f"batch {batch_id}: resumed ({batch.status}), {len(keys)} requests")
    if batch is None:
        data = "".join(_request_line(provider, key) + "\n" for key in keys).encode("utf-8")
        upload = _call(
            provider, "batch file upload", client.files.create,
            file=("nasflow-batch.jsonl", data), purpose="batch",
        )  # fmt: skip
        batch = _call(
            provider, "batch creation", client.batches.create,
            input_file_id=upload.id, endpoint=ENDPOINT, completion_window="24h",
        )  # fmt: skip
        cache.record_batch(fingerprint, batch.id)
        log(f"batch {batch.id}: created, {len(keys)} requests ({upload.id}, {len(data):,} bytes)")
    summary.batches += 1
    summary.requests += len(keys)
    started = time.monotonic()
    interval = POLL_S if poll_s is None else poll_s
    while batch.status not in FINISHED:
        _wait(interval)
        batch_id = batch.id
        batch = _call(provider, f"batch {batch_id}", client.batches.retrieve, batch_id)
        counts = batch.request_counts
        done = f", {counts.completed}/{counts.total} done, {counts.failed} failed" if counts else ""
        elapsed = format_duration(time.monotonic() - started)
        log(f"batch {batch.id}: {batch.status}{done}, {elapsed} elapsed")
    by_digest = {key.digest: key for key in keys}
    replies = errors = 0
    if batch.output_file_id:
        text = _call(provider, "batch output", client.files.content, batch.output_file_id)
        for line in text.text.splitlines():
            stored = _store(line, by_digest, cache, settings, provider)
            replies += stored
            errors += not stored
    if batch.error_file_id:
        text = _call(provider, "batch errors", client.files.content, batch.error_file_id)
        lines = [line for line in text.text.splitlines() if line.strip()]
        errors += len(lines)
        if lines:
            log(f"batch {batch.id}: {len(lines)} requests failed, e.g. {_error_text(lines[0])}")
    if batch.status != "completed":
        log(f"batch {batch.id} {batch.status}: {_batch_errors(batch)}")
    cache.close_batch(fingerprint)
    summary.replies += replies
    summary.errors += errors
    log(f"batch {batch.id}: {replies} replies stored in the cache, {errors} not answered")
    return replies


def _store(
    line: str,
    by_digest: dict[str, RequestKey],
    cache: ReplyCache,
    settings: PredictSettings,
    provider: OpenAIProvider,
) -> bool:
    """Store one output line's reply under its request's key; whether it held one."""
    if not line.strip():
        return False
    record = json.loads(line)
    key = by_digest.get(str(record.get("custom_id")))
    response = record.get("response") or {}
    if key is None or response.get("status_code") != 200:
        return False
    body = response.get("body") or {}
    choices = body.get("choices") or [{}]
    text = (choices[0].get("message") or {}).get("content") or ""
    usage = body.get("usage") or {}
    value = parse_prediction(text, settings.low, settings.high)
    tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
    cache.put(key, CachedReply(text, value, *tokens, None))
    provider.attempt_log.record(REPLY)
    return True


def _error_text(line: str) -> str:
    """The message of one error-file line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return line[:200]
    error = record.get("error") or (record.get("response") or {}).get("body", {}).get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)[:200]
    return str(record)[:200]


def _batch_errors(batch: Any) -> str:
    errors = getattr(batch, "errors", None)
    data = getattr(errors, "data", None) or []
    messages = [str(getattr(item, "message", item)) for item in data[:3]]
    return "; ".join(messages) or "no reason given"
