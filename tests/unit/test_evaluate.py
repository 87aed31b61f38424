"""Validation loss, translation and full scoring on a tiny prepared corpus (CPU, no network)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasflow.core.io import read_lines
from nasflow.data import load_split
from nasflow.efficiency.counts import count_params
from nasflow.evaluate import (
    prepare_batches,
    score_model,
    translate_ids,
    translate_split,
    translate_text,
    validation_loss,
)
from nasflow.model import EOS, ModelConfig, SuperTransformer, beam_search
from nasflow.space.hat import get_space

DECODE = {"beam": 3, "lenpen": 0.6, "max_len_a": 0.0, "max_len_b": 8}


@pytest.fixture(scope="module")
def model() -> SuperTransformer:
    torch.manual_seed(0)
    supernet = SuperTransformer(get_space("demo"), 100)
    supernet.set_arch(get_space("demo").sample_unique(1, seed=3)[0])
    return supernet.eval()


def hand_rolled_loss(
    model: SuperTransformer, split, count: int, epsilon: float
) -> tuple[float, float, int]:
    """Sentence-by-sentence (no padding) label-smoothed loss and NLL in bits, and ntokens."""
    loss = nll = 0.0
    ntokens = 0
    with torch.no_grad():
        for i in range(count):
            src, tgt = (torch.as_tensor(a, dtype=torch.long) for a in split[i])
            eos = torch.tensor([EOS])
            logits = model(torch.cat([src, eos])[None], torch.cat([eos, tgt])[None])[0]
            lprobs = F.log_softmax(logits.double(), dim=-1)
            target = torch.cat([tgt, eos])
            token_nll = -lprobs[torch.arange(len(target)), target]
            smooth = -lprobs.sum(-1)
            loss += float(((1 - epsilon) * token_nll + epsilon / lprobs.shape[-1] * smooth).sum())
            nll += float(token_nll.sum())
            ntokens += len(target)
    return loss / ntokens / math.log(2), nll / ntokens / math.log(2), ntokens


def test_validation_loss_matches_hand_rolled(tiny_data: Path, model: SuperTransformer) -> None:
    split = load_split(tiny_data, "valid")
    result = validation_loss(model, split, max_tokens=64, label_smoothing=0.1)
    loss, nll, ntokens = hand_rolled_loss(model, split, len(split), 0.1)
    assert result.nsentences == len(split)
    assert result.ntokens == ntokens
    assert result.loss_bits == pytest.approx(loss, rel=1e-5)
    assert result.nll_bits == pytest.approx(nll, rel=1e-5)
    plain = validation_loss(model, split, label_smoothing=0.0)
    assert plain.loss_bits == pytest.approx(plain.nll_bits, rel=1e-6)


def test_sentences_restricts_to_the_first_n(tiny_data: Path, model: SuperTransformer) -> None:
    split = load_split(tiny_data, "valid")
    result = validation_loss(model, split, sentences=7, max_tokens=64)
    loss, _, ntokens = hand_rolled_loss(model, split, 7, 0.1)
    assert (result.nsentences, result.ntokens) == (7, ntokens)
    assert result.loss_bits == pytest.approx(loss, rel=1e-5)
    assert validation_loss(model, split, sentences=10_000).nsentences == len(split)


def test_precollated_batches_give_identical_results(
    tiny_data: Path, model: SuperTransformer
) -> None:
    split = load_split(tiny_data, "valid")
    batches = prepare_batches(split, 64, 0, "cpu", model.config.max_positions)
    assert len(batches) > 1
    direct = validation_loss(model, split, max_tokens=64)
    assert validation_loss(model, None, batches=batches) == direct
    with pytest.raises(ValueError, match="split or precollated"):
        validation_loss(model, None)
    with pytest.raises(ValueError, match="no sentences"):
        validation_loss(model, None, batches=[])


def test_eval_mode_and_training_flag_restored(tiny_data: Path, model: SuperTransformer) -> None:
    split = load_split(tiny_data, "valid")
    reference = validation_loss(model, split, sentences=5)
    model.train()
    try:
        assert validation_loss(model, split, sentences=5) == reference  # no dropout
        assert model.training
    finally:
        model.eval()


def test_translate_ids_keeps_input_order(tiny_data: Path, model: SuperTransformer) -> None:
    split = load_split(tiny_data, "valid")
    sources = [split[i][0] for i in range(12)]
    one = translate_ids(model, sources, batch_sentences=1, **DECODE)
    many = translate_ids(model, sources, batch_sentences=64, **DECODE)
    assert one == many
    assert translate_ids(model, sources[::-1], batch_sentences=5, **DECODE) == one[::-1]
    src = torch.as_tensor(np.append(sources[3], EOS), dtype=torch.long)[None]
    best = beam_search(model, src, torch.tensor([src.shape[1]]), **DECODE)[0][0]
    assert one[3] == best.tokens
    assert all(EOS not in hyp and len(hyp) < DECODE["max_len_b"] for hyp in one)


def test_translate_truncates_long_sources() -> None:
    torch.manual_seed(0)
    small = SuperTransformer(get_space("demo"), 50, ModelConfig(max_positions=16)).eval()
    long_source = np.arange(4, 44, dtype=np.int64)  # 40 ids > max_positions
    hyps = translate_ids(small, [long_source, long_source[:3]], **DECODE)
    assert len(hyps) == 2


def test_translate_text_matches_translate_split(tiny_data: Path, model: SuperTransformer) -> None:
    split = load_split(tiny_data, "valid")
    spm_path = tiny_data / "spm.model"
    from_split = translate_split(model, split, spm_path, sentences=6, **DECODE)
    lines = read_lines(tiny_data / "valid.en")[:6]
    assert translate_text(model, lines, spm_path, **DECODE) == from_split
    assert len(from_split) == 6 and all(isinstance(line, str) for line in from_split)
    assert translate_text(model, [], spm_path, **DECODE) == []


def test_score_model_reports_each_role(
    tiny_data: Path, model: SuperTransformer, tmp_path: Path
) -> None:
    arch = model.arch
    assert arch is not None
    result = score_model(
        model,
        tiny_data,
        roles=("valid", "test"),
        sentences=8,
        batch_sentences=4,
        hypotheses_dir=tmp_path,
        **DECODE,
    )
    assert result["arch"] == arch.to_dict() and result["arch_id"] == arch.id
    assert result["params"] == count_params(arch)
    assert result["decode"] == {**DECODE, "batch_sentences": 4}
    assert result["environment"]["device"] == "cpu"
    assert result["data"]["target_lang"] == "de"
    for role in ("valid", "test"):
        entry = result[role]
        expected = validation_loss(model, load_split(tiny_data, role), sentences=8)
        assert entry["loss_bits"] == pytest.approx(expected.loss_bits, rel=1e-6)
        assert entry["sentences"] == 8 and entry["decode_seconds"] > 0
        assert 0.0 <= entry["bleu"] <= 100.0 and 0.0 <= entry["tokenized_bleu"] <= 100.0
        assert "tok:13a" in entry["bleu_signature"]
        assert entry["tokenized_bleu_signature"].endswith("|hat-compound-split")
        hyps = read_lines(tmp_path / f"{role}.hyp.de")
        assert hyps == translate_split(
            model, load_split(tiny_data, role), tiny_data / "spm.model", sentences=8, **DECODE
        )
