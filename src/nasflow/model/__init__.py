"""The elastic SuperTransformer, incremental decoding, beam search and checkpoints."""

from nasflow.model.generate import Hypothesis, beam_search, greedy_decode, max_lengths
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
    "PAD",
    "DecoderCache",
    "EncoderOut",
    "Hypothesis",
    "ModelConfig",
    "SuperTransformer",
    "beam_search",
    "greedy_decode",
    "max_lengths",
]
