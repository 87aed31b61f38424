"""Batched beam search and greedy decoding with the incremental key/value cache (fairseq rules).

Decoding starts from EOS (fairseq's convention), PAD and BOS are never generated, and the
maximum output length of a sentence is `min(a * src_len + b, max_positions - 1)` tokens
including EOS, at which point EOS is forced. A hypothesis's score is its summed log-probability
divided by `length ** lenpen` (length counts the EOS). A sentence is finished once it holds
`beam` finished hypotheses; finished sentences leave the batch so the rest run faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nasflow.model.supertransformer import BOS, EOS, PAD, SuperTransformer


@dataclass(frozen=True)
class Hypothesis:
    """A finished translation: token ids without EOS, normalised and raw log-probability."""

    tokens: list[int]
    score: float
    log_prob: float


def max_lengths(
    src_lengths: Tensor, max_len_a: float, max_len_b: int, max_positions: int
) -> Tensor:
    """Per-sentence output length limit (tokens including EOS)."""
    limit = (src_lengths.double() * max_len_a).floor().long() + int(max_len_b)
    return limit.clamp(min=1, max=max_positions - 1)


def _log_probs(logits: Tensor) -> Tensor:
    lprobs = torch.log_softmax(logits.float(), dim=-1)
    lprobs[:, PAD] = -torch.inf
    lprobs[:, BOS] = -torch.inf
    return lprobs


@torch.no_grad()
def beam_search(
    model: SuperTransformer,
    src_tokens: Tensor,
    src_lengths: Tensor,
    *,
    beam: int = 4,
    lenpen: float = 0.6,
    max_len_a: float = 0.0,
    max_len_b: int = 200,
) -> list[list[Hypothesis]]:
    """Up to `beam` hypotheses per sentence of the right-padded batch, best first."""
    was_training = model.training
    model.eval()
    try:
        return _beam_search(model, src_tokens, src_lengths, beam, lenpen, max_len_a, max_len_b)
    finally:
        model.train(was_training)


def _beam_search(
    model: SuperTransformer,
    src_tokens: Tensor,
    src_lengths: Tensor,
    beam: int,
    lenpen: float,
    max_len_a: float,
    max_len_b: int,
) -> list[list[Hypothesis]]:
    device = src_tokens.device
    bsz = src_tokens.shape[0]
    limits = max_lengths(src_lengths, max_len_a, max_len_b, model.config.max_positions).to(device)
    finished: list[list[Hypothesis]] = [[] for _ in range(bsz)]
    sentence_ids = torch.arange(bsz, device=device)  # batch row -> sentence
    expand = torch.arange(bsz, device=device).repeat_interleave(beam)
    cache = model.start_cache(model.encode(src_tokens))  # cross K/V once per sentence
    cache.select(expand)
    tokens = torch.full((bsz * beam, 1), EOS, dtype=torch.long, device=device)
    scores = torch.full((bsz, beam), -torch.inf, device=device)
    scores[:, 0] = 0.0
    step = 0
    while sentence_ids.numel():
        n = sentence_ids.numel()
        lprobs = _log_probs(model.decode(tokens[:, -1:], None, cache)[:, -1])  # type: ignore[arg-type]
        vocab = lprobs.shape[-1]
        at_limit = (step + 1 >= limits[sentence_ids]).repeat_interleave(beam)
        if bool(at_limit.any()):
            forced = torch.full_like(lprobs[at_limit], -torch.inf)
            forced[:, EOS] = 0.0
            lprobs[at_limit] = forced
        candidates = (scores.view(-1, 1) + lprobs).view(n, beam * vocab)
        k = min(2 * beam, candidates.shape[1])
        cand_scores, cand_index = candidates.topk(k, dim=1)
        cand_beam, cand_token = cand_index // vocab, cand_index % vocab
        is_eos = cand_token.eq(EOS) & cand_scores.isfinite()
        # Finalise EOS candidates among the top `beam` (fairseq), best first.
        done_rows = []
        eos_rows, eos_cols = torch.nonzero(is_eos[:, :beam], as_tuple=True)
        if eos_rows.numel():
            rows = eos_rows.tolist()
            prefix = tokens.view(n, beam, -1)
            values = cand_scores[eos_rows, eos_cols].tolist()
            beams = cand_beam[eos_rows, eos_cols].tolist()
            for row, value, beam_index in zip(rows, values, beams, strict=True):
                sentence = int(sentence_ids[row])
                if len(finished[sentence]) >= beam:
                    continue
                hyp = prefix[row, beam_index, 1:].tolist()
                length = len(hyp) + 1
                finished[sentence].append(Hypothesis(hyp, value / length**lenpen, value))
        row_limit = at_limit.view(n, beam)[:, 0].tolist()
        for row in range(n):
            if row_limit[row] or len(finished[int(sentence_ids[row])]) >= beam:
                done_rows.append(row)
        # Continue with the best `beam` non-EOS candidates of every sentence.
        order = torch.arange(k, device=device).expand(n, k) + is_eos.long() * k
        keep = order.topk(beam, dim=1, largest=False).indices
        next_scores = cand_scores.gather(1, keep)
        next_beam = cand_beam.gather(1, keep)
        next_token = cand_token.gather(1, keep)
        next_scores = torch.where(
            is_eos.gather(1, keep), torch.full_like(next_scores, -torch.inf), next_scores
        )
        if done_rows:
            alive = torch.ones(n, dtype=torch.bool, device=device)
            alive[done_rows] = False
            next_scores, next_beam, next_token = (
                next_scores[alive],
                next_beam[alive],
                next_token[alive],
            )
            row_index = torch.nonzero(alive, as_tuple=True)[0]
            sentence_ids = sentence_ids[alive]
        else:
            row_index = torch.arange(n, device=device)
        if not sentence_ids.numel():
            break
        source_rows = (row_index[:, None] * beam + next_beam).view(-1)
        tokens = torch.cat([tokens[source_rows], next_token.view(-1, 1)], dim=1)
        scores = next_scores
        cache.select(source_rows)
        step += 1
    return [sorted(hyps, key=lambda h: h.score, reverse=True) for hyps in finished]


@torch.no_grad()
def greedy_decode(
    model: SuperTransformer,
    src_tokens: Tensor,
    src_lengths: Tensor,
    *,
    max_len_a: float = 0.0,
    max_len_b: int = 200,
    use_cache: bool = True,
) -> list[list[int]]:
    """Arg-max decoding; `use_cache=False` re-runs the whole decoder every step (for tests)."""
    was_training = model.training
    model.eval()
    try:
        device = src_tokens.device
        limits = max_lengths(src_lengths, max_len_a, max_len_b, model.config.max_positions)
        encoder_out = model.encode(src_tokens)
        cache = model.start_cache(encoder_out) if use_cache else None
        tokens = torch.full((src_tokens.shape[0], 1), EOS, dtype=torch.long, device=device)
        done = torch.zeros(src_tokens.shape[0], dtype=torch.bool, device=device)
        outputs: list[list[int]] = [[] for _ in range(src_tokens.shape[0])]
        for step in range(int(limits.max())):
            if cache is not None:
                logits = model.decode(tokens[:, -1:], encoder_out, cache)[:, -1]
            else:
                logits = model.decode(tokens, encoder_out)[:, -1]
            lprobs = _log_probs(logits)
            at_limit = (step + 1 >= limits).to(device)
            lprobs[at_limit] = torch.where(
                torch.arange(lprobs.shape[1], device=device) == EOS, 0.0, -torch.inf
            )
            chosen = lprobs.argmax(dim=-1)
            for row in torch.nonzero(~done, as_tuple=True)[0].tolist():
                if int(chosen[row]) != EOS:
                    outputs[row].append(int(chosen[row]))
            done |= chosen.eq(EOS)
            if bool(done.all()):
                break
            tokens = torch.cat([tokens, chosen[:, None]], dim=1)
        return outputs
    finally:
        model.train(was_training)
