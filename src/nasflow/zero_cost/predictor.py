"""Zero-cost proxies of HAT architectures at initialisation, as a rank-only `Predictor`.

The scored model is the architecture as a from-scratch run starts it (`Trainer._build_model`):
`torch.manual_seed(seed)`, the SuperTransformer at the space's super shape, `.extract(arch)`.
That supernet does not depend on the architecture, so it is built once per scorer and every
architecture extracted from it (the same weights as a fresh build per architecture).

Loss (grad-norm, snip): token-level cross-entropy without label smoothing, summed over the
non-pad target tokens and divided by their number, in eval mode (no dropout).

Synflow on a seq2seq model: the data-free input is a source and a previous-output tensor of the
batch's shapes `[B, S]`, `[B, T]` in which every position holds `SYNFLOW_TOKEN`, the first id
after the special ones (no padding, no EOS); R is the sum of all output logits `[B, T, V]` in
float64. Rows of a Transformer do not interact and these B rows are identical, so R (and its
gradient) is B times that of one row: the model runs on `[1, S]`, `[1, T]` and the output is
scaled by B (the same value, B times faster).

Scores are the raw proxy values: higher means predicted better; no sign is flipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasflow.core.errors import DataError
from nasflow.data.batching import PAD, Batch
from nasflow.data.prepare import SPECIAL_IDS
from nasflow.model.supertransformer import ModelConfig, SuperTransformer
from nasflow.predictors.base import Predictor
from nasflow.space.hat import Arch, SearchSpace, get_space
from nasflow.zero_cost.proxies import NAMES, grad_norm_and_snip, synflow

if TYPE_CHECKING:
    import pandas as pd

SYNFLOW_TOKEN = max(SPECIAL_IDS.values()) + 1
"""The one token id of synflow's data-free input: the first id after the special ones."""


def translation_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Mean token-level cross-entropy (no label smoothing, padding ignored) of `batch`."""
    logits = model(batch.src_tokens, batch.prev_output_tokens)
    loss = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        batch.target.reshape(-1),
        ignore_index=PAD,
        reduction="sum",
    )
    return loss / batch.ntokens


def synflow_inputs(batch: Batch, rows: int | None = None) -> tuple[Tensor, Tensor]:
    """Source and previous-output tokens of the batch's shapes, all `SYNFLOW_TOKEN` (`rows`
    rows instead of the batch's B when given)."""
    rows = batch.size if rows is None else rows
    return (
        torch.full((rows, batch.src_tokens.shape[1]), SYNFLOW_TOKEN, dtype=torch.long),
        torch.full((rows, batch.prev_output_tokens.shape[1]), SYNFLOW_TOKEN, dtype=torch.long),
    )


def synflow_output(model: nn.Module, batch: Batch) -> Tensor:
    """Logits whose sum is R of the batch-shaped synflow input: one row's, times B."""
    src, prev = synflow_inputs(batch, rows=1)
    return model(src, prev) * batch.size


class InitialModels:
    """Architectures of one space initialised as from-scratch training starts them."""

    def __init__(
        self,
        space: SearchSpace | str,
        vocab_size: int,
        model_config: ModelConfig | None = None,
        seed: int = 1,
    ) -> None:
        self.space = get_space(space) if isinstance(space, str) else space
        self.vocab_size = int(vocab_size)
        self.model_config = model_config or ModelConfig()
        self.seed = int(seed)
        self._supernet: SuperTransformer | None = None

    def build(self, arch: Arch) -> SuperTransformer:
        """`arch` as `Trainer._build_model` initialises it (the caller's RNG is left alone)."""
        self.space.validate(arch)
        if self._supernet is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self._supernet = SuperTransformer(self.space, self.vocab_size, self.model_config)
        with torch.random.fork_rng(devices=[]):
            return self._supernet.extract(arch)


def _check_ids(batch: Batch, vocab_size: int) -> None:
    """Every token id of the batch (and synflow's) must be below the model's vocabulary."""
    largest = max(int(batch.src_tokens.max()), int(batch.target.max()), SYNFLOW_TOKEN)
    if largest >= vocab_size:
        raise DataError(f"batch token id {largest} does not fit the vocabulary of {vocab_size}")


def proxy_scores(model: nn.Module, batch: Batch, names: Sequence[str] = NAMES) -> dict[str, float]:
    """The proxies `names` of one model on one batch (grad-norm and snip share one pass)."""
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown zero-cost proxy {unknown[0]!r} (known: {', '.join(NAMES)})")
    scores: dict[str, float] = {}
    if "grad-norm" in names or "snip" in names:
        scores["grad-norm"], scores["snip"] = grad_norm_and_snip(
            model, lambda m: translation_loss(m, batch)
        )
    if "synflow" in names:
        scores["synflow"] = synflow(model, lambda m: synflow_output(m, batch))
    return {n: scores[n] for n in names}


def score_archs(
    archs: Sequence[Arch],
    *,
    space: SearchSpace | str,
    vocab_size: int,
    batch: Batch,
    model_config: ModelConfig | None = None,
    seed: int = 1,
) -> pd.DataFrame:
    """Columns `arch_id, grad-norm, snip, synflow, seconds`: every proxy of each architecture
    from one initialised model, and the seconds it took (model extraction included)."""
    import pandas as pd

    _check_ids(batch, vocab_size)
    models = InitialModels(space, vocab_size, model_config, seed)
    rows = []
    for arch in archs:
        started = time.perf_counter()
        scores = proxy_scores(models.build(arch), batch)
        rows.append({"arch_id": arch.id, **scores, "seconds": time.perf_counter() - started})
    return pd.DataFrame(rows, columns=["arch_id", *NAMES, "seconds"])


class ZeroCostPredictor(Predictor):
    """One zero-cost proxy (`name` in NAMES) of each architecture at initialisation; rank only."""

    bleu_scale = False

    def __init__(
        self,
        name: str,
        batch: Batch,
        *,
        space: SearchSpace | str,
        vocab_size: int,
        model_config: ModelConfig | None = None,
        seed: int = 1,
    ) -> None:
        if name not in NAMES:
            raise ValueError(f"unknown zero-cost proxy {name!r} (known: {', '.join(NAMES)})")
        _check_ids(batch, vocab_size)
        self.name = name
        self.batch = batch
        self.models = InitialModels(space, vocab_size, model_config, seed)

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        values = [
            proxy_scores(self.models.build(a), self.batch, [self.name])[self.name] for a in archs
        ]
        return np.array(values, dtype=float)
