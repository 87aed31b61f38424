"""The elastic SuperTransformer, Mixture-of-Supernets, incremental decoding, beam search and
checkpoints."""

from nasflow.model.generate import Hypothesis, beam_search, greedy_decode, max_lengths
from nasflow.model.mos import (
    KIND_LABELS,
    KINDS,
    MixtureConfig,
    MixtureSupernet,
    build_supernet,
)
from nasflow.model.supertransformer import (
    BOS,
    EOS,
    PAD,
    DecoderCache,
    EncoderOut,
    ModelConfig,
    SuperTransformer,
)

__all__ = [
    "BOS",
    "EOS",
    "KINDS",
    "KIND_LABELS",
    "PAD",
    "DecoderCache",
    "EncoderOut",
    "Hypothesis",
    "MixtureConfig",
    "MixtureSupernet",
    "ModelConfig",
    "SuperTransformer",
    "beam_search",
    "build_supernet",
    "greedy_decode",
    "max_lengths",
]
