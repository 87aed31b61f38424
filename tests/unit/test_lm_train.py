"""The decoder training loop: schedule, batches, resumption, evaluation, checkpoints, settings."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasflow.core.errors import ConfigError, DataError
from nasflow.core.state import TrainStateError
from nasflow.lts.lm_train import (
    LMTrainSettings,
    batch_windows,
    evaluate_nll,
    load_checkpoint,
    save_checkpoint,
    train_lm,
)
from nasflow.lts.model import GPTDecoder
from nasflow.lts.proxy_check import ProxySettings
from nasflow.space.gpt import GPTArch

ARCH = GPTArch(2, 32, (64, 48), (2, 4))
VOCAB = 24
# A repetitive stream: a cycle of 12 tokens with a little noise.
STREAM = np.tile(np.arange(12), 300)
STREAM[::37] = 20
SETTINGS = LMTrainSettings(
    steps=12, batch_tokens=64, seq_len=16, lr=3e-3, warmup=2, dropout=0.1, eval_every=2,
    save_every=3,
)  # fmt: skip


def tiny_model(seed: int = 0, **kwargs: object) -> GPTDecoder:
    torch.manual_seed(seed)
    return GPTDecoder(ARCH, VOCAB, 32, **kwargs)  # type: ignore[arg-type]


# ---- schedule and batches ------------------------------------------------------------------------
def test_schedule_warms_up_linearly_then_decays_to_the_floor_like_the_proxy_check() -> None:
    s = LMTrainSettings(steps=10, batch_tokens=16, seq_len=16, lr=2.0, warmup=2, min_lr_ratio=0.1)
    assert s.lr_at(0) == pytest.approx(1.0)
    assert s.lr_at(1) == pytest.approx(2.0)
    assert s.lr_at(2) == pytest.approx(2.0)  # the cosine starts at the peak
    assert s.lr_at(9) == pytest.approx(0.2)  # lr * min_lr_ratio at the last step
    middle = 2 + 3.5  # halfway through the 7-step cosine
    assert s.lr_at(int(middle)) > 1.1 > s.lr_at(int(middle) + 1)
    proxy = ProxySettings(steps=10, lr=2.0, warmup=2, min_lr_ratio=0.1)
    for step in range(10):
        assert s.lr_at(step) == pytest.approx(proxy.recipe().lr_at(step))
    assert LMTrainSettings(steps=50, batch_tokens=16, seq_len=16).warmup_steps == 5


def test_batches_are_a_function_of_seed_and_step_and_epochs_are_permutations() -> None:
    n, rows = 10, 4
    steps = [batch_windows(n, rows, 7, step) for step in range(5)]  # 20 windows: two epochs
    flat = np.concatenate(steps)
    for epoch in range(2):
        expected = np.random.default_rng([7, epoch]).permutation(n)
        assert np.array_equal(flat[epoch * n : (epoch + 1) * n], expected)
    assert sorted(flat[:n]) == list(range(n))
    assert np.array_equal(batch_windows(n, rows, 7, 3), steps[3])  # no hidden state
    assert not np.array_equal(batch_windows(n, rows, 8, 0), steps[0])
    with pytest.raises(ValueError, match="rows"):
        batch_windows(3, 4, 7, 0)


def test_a_stream_shorter_than_one_batch_is_refused() -> None:
    settings = LMTrainSettings(steps=2, batch_tokens=64, seq_len=16)  # 4 windows of 17 tokens
    with pytest.raises(DataError, match=r"3 windows of 17 tokens, fewer than one batch of 4"):
        train_lm(tiny_model(), STREAM[:60], STREAM[:40], settings)
    with pytest.raises(DataError, match="outside"):
        train_lm(tiny_model(), np.full(200, VOCAB), STREAM[:40], settings)


# ---- training ------------------------------------------------------------------------------------
def test_a_tiny_model_learns_repetitive_text(tmp_path: Path) -> None:
    settings = LMTrainSettings(
        steps=60, batch_tokens=128, seq_len=16, lr=3e-3, dropout=0.0, eval_every=20
    )
    messages: list[str] = []
    result = train_lm(
        tiny_model(), STREAM, STREAM[:400], settings, curve_path=tmp_path / "c.csv",
        progress=messages.append,
    )  # fmt: skip
    assert result.steps == 60 and result.tokens == 60 * 8 * 16 and result.resumed_from_step == 0
    curve = result.curve
    assert [row["step"] for row in curve] == [20, 40, 60] and len(messages) == 3
    assert curve[0]["train_loss"] > curve[-1]["train_loss"]
    assert curve[0]["valid_nll"] > curve[-1]["valid_nll"]
    assert result.valid_nll < 0.5 * math.log(VOCAB)
    assert result.valid_tokens == 399
    with open(tmp_path / "c.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["step", "lr", "train_loss", "valid_nll", "tokens", "seconds"]
    assert float(rows[-1]["valid_nll"]) == pytest.approx(result.valid_nll)
    assert result.to_dict()["valid_ppl"] == pytest.approx(math.exp(result.valid_nll))


def _curve_without_seconds(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


class Interrupt(Exception):
    pass


def test_resuming_an_interrupted_run_gives_bit_identical_weights_and_curve(tmp_path: Path) -> None:
    full = tiny_model(dropout=0.1)
    done = train_lm(
        full,
        STREAM,
        STREAM[:300],
        SETTINGS,
        state_dir=tmp_path / "a",
        curve_path=tmp_path / "a.csv",
    )

    def stop_at_step_8(message: str) -> None:
        if message.startswith("step 8/"):
            raise Interrupt

    with pytest.raises(Interrupt):  # killed after step 8; the last save was at step 6
        train_lm(
            tiny_model(dropout=0.1), STREAM, STREAM[:300], SETTINGS, state_dir=tmp_path / "b",
            curve_path=tmp_path / "b.csv", progress=stop_at_step_8,
        )  # fmt: skip
    resumed_model = tiny_model(dropout=0.1)
    resumed = train_lm(
        resumed_model, STREAM, STREAM[:300], SETTINGS, state_dir=tmp_path / "b",
        curve_path=tmp_path / "b.csv",
    )  # fmt: skip
    assert resumed.resumed_from_step == 6 and resumed.steps == 12
    for (name, a), (_, b) in zip(
        full.state_dict().items(), resumed_model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert _curve_without_seconds(tmp_path / "a.csv") == _curve_without_seconds(tmp_path / "b.csv")
    assert [r["step"] for r in resumed.curve] == [2, 4, 6, 8, 10, 12]
    assert resumed.train_loss == done.train_loss and resumed.valid_nll == done.valid_nll
    # A finished state is reused as it is.
    again = train_lm(
        tiny_model(dropout=0.1), STREAM, STREAM[:300], SETTINGS, state_dir=tmp_path / "b"
    )
    assert again.resumed_from_step == 12 and again.valid_nll == done.valid_nll


def test_a_state_of_other_inputs_is_refused_naming_what_differs(tmp_path: Path) -> None:
    short = LMTrainSettings(steps=2, batch_tokens=32, seq_len=16, save_every=1)
    train_lm(tiny_model(), STREAM, STREAM[:100], short, state_dir=tmp_path)
    other = LMTrainSettings(steps=2, batch_tokens=32, seq_len=16, save_every=1, lr=1e-3)
    with pytest.raises(TrainStateError, match=r"settings\.lr: 0\.0006 -> 0\.001"):
        train_lm(tiny_model(), STREAM, STREAM[:100], other, state_dir=tmp_path)
    with pytest.raises(TrainStateError, match="init"):  # other initial weights
        train_lm(tiny_model(seed=1), STREAM, STREAM[:100], short, state_dir=tmp_path)
    saving_less = LMTrainSettings(steps=2, batch_tokens=32, seq_len=16, save_every=50)
    result = train_lm(tiny_model(), STREAM, STREAM[:100], saving_less, state_dir=tmp_path)
    assert result.resumed_from_step == 2  # save_every is not an input


# ---- evaluation ----------------------------------------------------------------------------------
class Uniform(GPTDecoder):
    """Every logit zero: each token costs log(vocab) nats."""

    def forward(self, tokens, past=None):  # type: ignore[no-untyped-def, override]
        _, present = super().forward(tokens, past)
        return torch.zeros(*tokens.shape, self.vocab_size), present


@pytest.mark.parametrize(("length", "rows"), [(50, 16), (50, 2), (49, 3), (17, 1), (2, 4)])
def test_evaluate_nll_scores_every_token_after_the_first_once(length: int, rows: int) -> None:
    torch.manual_seed(0)
    uniform = Uniform(ARCH, VOCAB, 32)
    nll, count = evaluate_nll(uniform, STREAM[:length], 16, rows=rows)
    assert count == length - 1
    assert nll == pytest.approx(count * math.log(VOCAB))
    model = tiny_model().eval()
    ids = torch.as_tensor(STREAM[:length], dtype=torch.long)
    expected = 0.0
    for start in range(0, length - 1, 16):  # one window at a time, each from an empty context
        inputs, targets = ids[start : min(start + 16, length - 1)], ids[start + 1 : start + 17]
        with torch.no_grad():
            logits, _ = model(inputs[None])
        expected += float(F.cross_entropy(logits[0], targets, reduction="sum"))
    assert evaluate_nll(model, STREAM[:length], 16, rows=rows)[0] == pytest.approx(expected)
    assert evaluate_nll(model, STREAM, 16, max_tokens=length)[1] == length - 1


def test_evaluate_nll_refuses_too_short_streams_and_windows_beyond_the_positions() -> None:
    with pytest.raises(DataError, match="1 token"):
        evaluate_nll(tiny_model(), STREAM[:1], 16)
    with pytest.raises(ConfigError, match="seq_len"):
        evaluate_nll(tiny_model(), STREAM, 64)


# ---- checkpoints ---------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = tiny_model()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, {"name": "c1", "steps": (1, 2)})
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"arch", "vocab_size", "n_positions", "state_dict", "meta"}
    assert payload["arch"] == ARCH.to_dict() and payload["n_positions"] == 32
    loaded, meta = load_checkpoint(path, dropout=0.2)
    assert meta == {"name": "c1", "steps": [1, 2]}
    assert loaded.arch == ARCH and not loaded.training and loaded.drop.p == 0.2
    assert loaded.lm_head.weight is loaded.wte.weight
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    tokens = torch.as_tensor(STREAM[None, :20], dtype=torch.long)
    model.eval()
    assert torch.equal(model(tokens)[0], loaded(tokens)[0])


def test_bad_checkpoints_are_refused_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pt"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        load_checkpoint(missing)
    partial = tmp_path / "partial.pt"
    torch.save({"arch": ARCH.to_dict()}, partial)
    with pytest.raises(DataError, match=rf"{re.escape(str(partial))}: .*lacks vocab_size"):
        load_checkpoint(partial)
    wrong = tmp_path / "wrong.pt"
    save_checkpoint(wrong, tiny_model(), {})
    payload = torch.load(wrong, weights_only=True)
    payload["arch"]["d_model"] = 64
    torch.save(payload, wrong)
    with pytest.raises(DataError, match=rf"{re.escape(str(wrong))}: damaged decoder checkpoint"):
        load_checkpoint(wrong)


# ---- settings ------------------------------------------------------------------------------------
KEY = "text_prediction.pretrain"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"steps": "x"}, "text_prediction.pretrain.steps must be an integer >= 1, got 'x'"),
        ({"steps": True}, "text_prediction.pretrain.steps must be an integer >= 1, got True"),
        ({"lr": 0}, "text_prediction.pretrain.lr must be a number > 0, got 0"),
        ({"dropout": 1.0}, "text_prediction.pretrain.dropout must be a number in [0, 1)"),
        ({"betas": [0.9]}, "text_prediction.pretrain.betas must be two numbers in [0, 1)"),
        ({"eval_tokens": 1}, "text_prediction.pretrain.eval_tokens must be null or an integer"),
        ({"warmup": 20, "steps": 10}, "text_prediction.pretrain.warmup must be <= steps (10)"),
        ({"batch_tokens": 8, "seq_len": 16}, "text_prediction.pretrain.batch_tokens must be >="),
        ({"grad_clip": -1}, "text_prediction.pretrain.grad_clip must be null or a number > 0"),
        ({"stepz": 3}, "unknown setting(s) text_prediction.pretrain.stepz; known: steps"),
    ],
)
def test_from_mapping_errors_name_the_key(entries: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        LMTrainSettings.from_mapping(entries, KEY)


def test_from_mapping_normalises_yaml_values() -> None:
    settings = LMTrainSettings.from_mapping({"lr": 1, "betas": [0.8, 0.9], "grad_clip": None}, KEY)
    assert settings.lr == 1.0 and isinstance(settings.lr, float)
    assert settings.betas == (0.8, 0.9) and settings.grad_clip is None
    assert settings.to_dict()["betas"] == [0.8, 0.9]
    assert LMTrainSettings.from_mapping(settings.to_dict(), KEY) == settings
    assert settings.rows == 8192 // 128
