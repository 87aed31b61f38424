"""The trained SuperTransformer as a performance predictor (HAT reference §3).

Each architecture is selected inside the supernet (weights inherited, nothing trained) and
scored on the valid split: `metric="loss"` gives minus the token-weighted label-smoothed loss in
bits (HAT's search criterion, rank only); `metric="bleu"` gives sacreBLEU of beam search
translations (a BLEU estimate). The valid data is collated once, on the model's device.
With `metric="loss"` the predictor can also score seeded subsets of its sentences from one pass
per architecture (`valid_subsets`, `subset_scores`) and be restricted to one (`restrict`): the
search's `fast` protocol (`nasflow.search.subset`).
A Mixture-of-Supernets model scores the same way; the predictor's name gives its kind
("Neuron-wise MoS (loss)" beside HAT's "Supernet (loss)").
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasflow.core.device import resolve_device, resolve_precision
from nasflow.core.errors import ConfigError, DataError
from nasflow.data.batching import PAD
from nasflow.data.prepare import load_split, load_vocab_size
from nasflow.evaluate.bleu import corpus_bleu
from nasflow.evaluate.loss import (
    model_device,
    prepare_batches,
    sentence_losses,
    validation_loss,
)
from nasflow.evaluate.score import read_references
from nasflow.evaluate.translate import load_spm, source_batches, translate_batches
from nasflow.model import KIND_LABELS, SuperTransformer
from nasflow.model.checkpoint import load_model
from nasflow.predictors.base import Predictor, check_scores
from nasflow.space.hat import Arch

METRICS = ("loss", "bleu")


class SupernetPredictor(Predictor):
    """Scores subnets of a trained supernet on the valid split; higher is better.

    Attributes:
        timings: seconds spent on each architecture scored so far, in order.
        prepare_seconds: time spent loading and collating the valid data.
    """

    def __init__(
        self,
        model: SuperTransformer,
        data_dir: str | Path,
        *,
        metric: str = "loss",
        valid_sentences: int = 0,
        max_tokens: int = 4096,
        label_smoothing: float = 0.1,
        device: torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        role: str = "valid",
        beam: int = 4,
        lenpen: float = 0.6,
        max_len_a: float = 0.0,
        max_len_b: int = 200,
        batch_sentences: int = 128,
    ) -> None:
        if metric not in METRICS:
            raise ConfigError(f"metric {metric!r}: expected one of {', '.join(METRICS)}")
        if not model.is_supernet:
            raise ConfigError("SupernetPredictor needs a supernet, got a dense model")
        if valid_sentences < 0:
            raise ConfigError(f"valid_sentences must be >= 0 (0 = all), got {valid_sentences}")
        vocab = load_vocab_size(data_dir)
        if vocab != model.vocab_size:
            raise DataError(
                f"{data_dir}: vocabulary of {vocab} ids, but the model has {model.vocab_size}"
            )
        self.model = model.to(device) if device is not None else model
        self.device = model_device(self.model)
        self.dtype = dtype
        self.metric = metric
        self.name = f"{KIND_LABELS[model.kind]} ({metric})"
        self.bleu_scale = metric == "bleu"
        self.label_smoothing = label_smoothing
        self.decode: dict[str, Any] = {
            "beam": beam,
            "lenpen": lenpen,
            "max_len_a": max_len_a,
            "max_len_b": max_len_b,
        }
        self.timings: list[float] = []
        start = time.perf_counter()
        split = load_split(data_dir, role)
        count = min(valid_sentences, len(split)) if valid_sentences else len(split)
        max_positions = model.config.max_positions
        if metric == "loss":
            self.batches = prepare_batches(split, max_tokens, count, self.device, max_positions)
            self.full_batches = self.batches
            self._split, self._max_tokens = split, max_tokens
            self.subset: np.ndarray | None = None
        else:
            sources = [split[i][0] for i in range(count)]
            self.sources = source_batches(
                sources,
                batch_sentences=batch_sentences,
                max_positions=max_positions,
                device=self.device,
            )
            self.references = read_references(data_dir, role, count)
            self.processor = load_spm(Path(data_dir) / "spm.model")
        self.sentences = count
        self.prepare_seconds = time.perf_counter() - start

    @classmethod
    def from_file(
        cls,
        model_path: str | Path,
        data_dir: str | Path,
        *,
        device: str = "auto",
        precision: str = "fp32",
        **options: Any,
    ) -> SupernetPredictor:
        """Load a supernet saved by `save_model`; `device`, `precision` as in `core.device`."""
        resolved = resolve_device(device)
        dtype = resolve_precision(precision, resolved)
        model, _ = load_model(model_path, resolved)
        return cls(model, data_dir, device=resolved, dtype=dtype, **options)

    @property
    def seconds_per_arch(self) -> float:
        """Mean scoring time per architecture so far (NaN before the first)."""
        return sum(self.timings) / len(self.timings) if self.timings else math.nan

    def _score(self) -> float:
        if self.metric == "loss":
            loss = validation_loss(
                self.model,
                None,
                label_smoothing=self.label_smoothing,
                dtype=self.dtype,
                batches=self.batches,
            )
            return -loss.loss_bits
        ids = translate_batches(self.model, self.sources, dtype=self.dtype, **self.decode)
        hypotheses = [self.processor.decode(hyp) for hyp in ids]
        return corpus_bleu(hypotheses, self.references).score

    # ---- validation subsets (metric "loss") ---------------------------------------------------
    def _check_loss(self, what: str) -> None:
        if self.metric != "loss":
            raise ConfigError(f"{what} needs the loss metric (evaluate.predictor_metric: loss)")

    def valid_subsets(self, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
        """Nested seeded subsets of the scored sentences: one permutation (seed `seed`), and
        for each fraction the shortest prefix holding at least that share of the target tokens
        (EOS included). Each subset is sorted sentence indices of the split."""
        self._check_loss("valid_subsets")
        index = np.concatenate([b.indices.cpu().numpy() for b in self.full_batches])
        tokens = np.concatenate([(b.target != PAD).sum(1).cpu().numpy() for b in self.full_batches])
        order = np.random.default_rng(seed).permutation(len(index))
        cumulative = np.cumsum(tokens[order])
        subsets = []
        for fraction in fractions:
            count = int(np.searchsorted(cumulative, fraction * cumulative[-1])) + 1
            subsets.append(np.sort(index[order[: min(count, len(order))]]).astype(np.int64))
        return subsets

    def sentence_losses(self, arch: Arch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`arch`'s per-sentence losses on the full scored set (`evaluate.loss.sentence_losses`):
        sentence indices, summed losses (nats) and target tokens."""
        self._check_loss("sentence_losses")
        previous, was_training = self.model.arch, self.model.training
        try:
            self.model.set_arch(arch)
            return sentence_losses(
                self.model,
                self.full_batches,
                label_smoothing=self.label_smoothing,
                dtype=self.dtype,
            )
        finally:
            if previous is not None:
                self.model.set_arch(previous)
            self.model.train(was_training)

    def subset_scores(
        self, archs: Sequence[Arch], subsets: Sequence[np.ndarray | None]
    ) -> np.ndarray:
        """Scores [len(subsets), len(archs)] of each architecture on each subset of sentence
        indices (None: every scored sentence), from one pass over the full set per architecture
        (as `predict` scores them, up to float rounding)."""
        scores = np.empty((len(subsets), len(archs)))
        for column, arch in enumerate(archs):
            start = time.perf_counter()
            index, losses, tokens = self.sentence_losses(arch)
            for row, subset in enumerate(subsets):
                keep = slice(None) if subset is None else np.isin(index, subset)
                scores[row, column] = -losses[keep].sum() / tokens[keep].sum() / math.log(2)
            self.timings.append(time.perf_counter() - start)
        return scores

    def restrict(self, subset: np.ndarray | None) -> None:
        """Score only the sentences `subset` from now on (None: the full set again)."""
        self._check_loss("restrict")
        if subset is None:
            self.batches, self.subset = self.full_batches, None
            return
        subset = np.asarray(subset, dtype=np.int64)
        self.batches = prepare_batches(
            self._split,
            self._max_tokens,
            device=self.device,
            max_positions=self.model.config.max_positions,
            indices=subset,
        )
        self.subset = subset

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Score each architecture in turn; the model's previous arch is restored afterwards."""
        previous, was_training = self.model.arch, self.model.training
        scores = []
        try:
            for arch in archs:
                start = time.perf_counter()
                self.model.set_arch(arch)
                scores.append(self._score())
                self.timings.append(time.perf_counter() - start)
        finally:
            if previous is not None:
                self.model.set_arch(previous)
            self.model.train(was_training)
        return check_scores(self, archs, scores)
