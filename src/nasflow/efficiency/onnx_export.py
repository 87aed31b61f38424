"""ONNX export of one architecture for deployment: an encoder graph and a decoder-step graph.

- `encoder.onnx`: `src_tokens [B, S]` int64 -> `padding_mask [B, S]` bool and, for every decoder
  layer i, the cross-attention keys/values `cross_k_i`, `cross_v_i` `[B, H_i, count_i*S, d_h]`
  (the encoder states the layer attends to, projected once per sentence).
- `decoder.onnx`: one incremental step. Inputs `tokens [B, 1]` int64, `padding_mask`, the cross
  keys/values and the self-attention cache `past_k_i`, `past_v_i` `[B, H_i, T, d_h]` (T = 0 at the
  first step); outputs `logits [B, V]` and `present_k_i`, `present_v_i` `[B, H_i, T+1, d_h]`.
  The step's position is the cache length T, read from the shape of `past_k_0`.

Batch, source length and cache length are dynamic, so one export serves beam search (tile the
cross keys/values to the beam) and any sentence length up to `max_positions`.

Exporter: the TorchScript exporter (`dynamo=False`), on purpose. The torch.export-based one
(`dynamo=True`, the default since PyTorch 2.9) needs `onnxscript`, which nasflow does not depend
on, and `nasflow.lts.graph_template` patches the TorchScript exporter's graphs node by node (its
tests compare them with `export_lts`). `exporter_warnings()` silences only the warnings this
choice brings, each named.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nasflow.core.errors import NasflowError
from nasflow.core.io import atomic_path, write_json_atomic
from nasflow.model.supertransformer import EOS, PAD, DecoderCache, SuperTransformer

OPSET = 18
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
META_FILE = "export.json"


@contextmanager
def exporter_warnings() -> Iterator[None]:
    """Silence the warnings of a TorchScript export of our graphs, and only those."""
    with warnings.catch_warnings():
        # The exporter is chosen on purpose (module docstring).
        warnings.filterwarnings(
            "ignore", message="You are using the legacy TorchScript-based ONNX export",
            category=DeprecationWarning,
        )  # fmt: skip
        # Raised inside torch.onnx by its own exporter_context helper, not by our call.
        warnings.filterwarnings(
            "ignore", message="The feature will be removed", category=DeprecationWarning,
            module=r"torch\.onnx",
        )  # fmt: skip
        # Python conditions on traced shapes (`_prefix`'s full-size test, the causal flag, the
        # embedding's padding check): one export is of one architecture, so the sizes they read
        # are that architecture's fixed widths; the varying axes (batch, lengths) are declared
        # dynamic and checked against eager PyTorch by `verify_export` and the tests.
        warnings.filterwarnings(
            "ignore", message="Converting a tensor to a Python boolean",
            category=torch.jit.TracerWarning,
        )  # fmt: skip
        yield


class ExportError(NasflowError):
    """The model could not be exported or the export folder is incomplete."""


class EncoderGraph(nn.Module):
    """Encoder plus the cross-attention key/value projections of every decoder layer."""

    def __init__(self, model: SuperTransformer):
        super().__init__()
        self.model = model

    def forward(self, src_tokens: Tensor) -> tuple[Tensor, ...]:
        model = self.model
        cache = model.start_cache(model.encode(src_tokens))
        padding_mask = src_tokens.eq(PAD)
        return (padding_mask, *[t for k, v, _ in cache.cross for t in (k, v)])


class DecoderStepGraph(nn.Module):
    """One incremental decoder step over flat cache tensors (see the module docstring)."""

    def __init__(self, model: SuperTransformer):
        super().__init__()
        self.model = model
        assert model.arch is not None
        self.layers = model.arch.decoder_layer_num

    def forward(self, tokens: Tensor, padding_mask: Tensor, *cache_tensors: Tensor) -> tuple:
        model, n = self.model, self.layers
        cross, past = cache_tensors[: 2 * n], cache_tensors[2 * n :]
        cache = DecoderCache(length=past[0].shape[2])
        for i in range(n):
            mask = model.cross_mask(padding_mask, model.attended_layers(i))
            cache.cross.append((cross[2 * i], cross[2 * i + 1], mask))
            cache.self_attn.append({"k": past[2 * i], "v": past[2 * i + 1]})
        logits = model.decode(tokens, None, cache)  # type: ignore[arg-type]
        present = [t for entry in cache.self_attn for t in (entry["k"], entry["v"])]
        return (logits[:, -1], *present)


def cache_names(layers: int) -> dict[str, list[str]]:
    """Graph input/output names of the cross and self-attention caches."""
    return {
        "cross": [f"cross_{kind}_{i}" for i in range(layers) for kind in ("k", "v")],
        "past": [f"past_{kind}_{i}" for i in range(layers) for kind in ("k", "v")],
        "present": [f"present_{kind}_{i}" for i in range(layers) for kind in ("k", "v")],
    }


@dataclass(frozen=True)
class ExportedModel:
    """Paths and metadata of an export folder."""

    folder: Path
    meta: dict[str, Any]

    @property
    def encoder(self) -> Path:
        return self.folder / ENCODER_FILE

    @property
    def decoder(self) -> Path:
        return self.folder / DECODER_FILE

    @property
    def layers(self) -> int:
        return int(self.meta["decoder_layers"])

    @classmethod
    def load(cls, folder: str | Path) -> ExportedModel:
        folder = Path(folder)
        meta_path = folder / META_FILE
        missing = [
            name for name in (ENCODER_FILE, DECODER_FILE, META_FILE) if not (folder / name).exists()
        ]
        if missing:
            raise ExportError(f"ONNX export folder {folder} lacks {', '.join(missing)}")
        return cls(folder, json.loads(meta_path.read_text()))


def _example_cache(model: SuperTransformer, beam: int, src_len: int, past_len: int) -> list[Tensor]:
    enc_graph = EncoderGraph(model)
    src = torch.full((1, src_len), 7, dtype=torch.long)
    src[0, -1] = EOS
    _, *cross = enc_graph(src)
    cross = [t.expand(beam, -1, -1, -1).contiguous() for t in cross]
    assert model.arch is not None
    past = []
    q = model.space.qkv_dim
    for i in range(model.arch.decoder_layer_num):
        heads = model.arch.decoder_self_attention_heads[i]
        shape = (beam, heads, past_len, q // heads)
        past += [torch.randn(shape), torch.randn(shape)]
    return cross + past


def export_onnx(
    model: SuperTransformer, folder: str | Path, *, meta: dict[str, Any] | None = None
) -> ExportedModel:
    """Export `model`'s selected architecture (fp32, CPU) as encoder and decoder-step graphs.

    A supernet is first extracted to a dense model of its selected arch. Files are written
    atomically; `export.json` records the arch, vocabulary size, opset and `meta`.
    """
    if model.arch is None:
        raise ExportError("the model has no architecture selected")
    dense = (model.extract() if model.is_supernet else model).to("cpu", torch.float32).eval()
    arch = dense.arch
    assert arch is not None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = cache_names(arch.decoder_layer_num)
    batch, src_len, tgt_len = "batch", "source_length", "cache_length"
    with torch.no_grad(), exporter_warnings():
        src = torch.full((2, 6), 7, dtype=torch.long)
        src[:, -1] = EOS
        enc_dynamic = {"src_tokens": {0: batch, 1: src_len}, "padding_mask": {0: batch, 1: src_len}}
        for name in names["cross"]:
            enc_dynamic[name] = {0: batch, 2: f"cross_length_{name.rsplit('_', 1)[1]}"}
        with atomic_path(folder / ENCODER_FILE) as path:
            torch.onnx.export(
                EncoderGraph(dense),
                (src,),
                str(path),
                input_names=["src_tokens"],
                output_names=["padding_mask", *names["cross"]],
                dynamic_axes=enc_dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
        beam, past_len = 3, 4
        cache = _example_cache(dense, beam, 6, past_len)
        tokens = torch.full((beam, 1), 7, dtype=torch.long)
        padding = torch.zeros(beam, 6, dtype=torch.bool)
        dec_dynamic: dict[str, dict[int, str]] = {
            "tokens": {0: batch},
            "padding_mask": {0: batch, 1: src_len},
            "logits": {0: batch},
        }
        for name in names["cross"]:
            dec_dynamic[name] = {0: batch, 2: f"cross_length_{name.rsplit('_', 1)[1]}"}
        for name in names["past"]:
            dec_dynamic[name] = {0: batch, 2: tgt_len}
        for name in names["present"]:
            dec_dynamic[name] = {0: batch, 2: "next_length"}
        with atomic_path(folder / DECODER_FILE) as path:
            torch.onnx.export(
                DecoderStepGraph(dense),
                (tokens, padding, *cache),
                str(path),
                input_names=["tokens", "padding_mask", *names["cross"], *names["past"]],
                output_names=["logits", *names["present"]],
                dynamic_axes=dec_dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
    info = {
        "arch": arch.to_dict(),
        "arch_id": arch.id,
        "vocab_size": dense.vocab_size,
        "decoder_layers": arch.decoder_layer_num,
        "qkv_dim": dense.space.qkv_dim,
        "max_positions": dense.config.max_positions,
        "opset": OPSET,
        "torch": torch.__version__,
        **(meta or {}),
    }
    write_json_atomic(folder / META_FILE, info)
    return ExportedModel(folder, info)


@torch.no_grad()
def verify_export(
    model: SuperTransformer, exported: ExportedModel, *, length: int = 8, beam: int = 2
) -> float:
    """Largest absolute difference between ONNX Runtime and PyTorch over an encoder run and
    `length` decoder steps on a padded two-sentence batch tiled to `beam` (logits and caches)."""
    from nasflow.core.ort import ort_session

    dense = (model.extract() if model.is_supernet else model).to("cpu", torch.float32).eval()
    assert dense.arch is not None
    names = cache_names(dense.arch.decoder_layer_num)
    generator = torch.Generator().manual_seed(0)
    src = torch.randint(4, dense.vocab_size, (2, length), generator=generator)
    src[:, -1] = EOS
    src[1, length // 2 :] = PAD  # a right-padded second sentence
    src[1, length // 2 - 1] = EOS
    tokens = torch.randint(4, dense.vocab_size, (2 * beam, length), generator=generator)
    tile = torch.arange(2).repeat_interleave(beam)
    encoder_session = ort_session(exported.encoder, threads=1)
    decoder_session = ort_session(exported.decoder, threads=1)
    padding, *cross = encoder_session.run(None, {"src_tokens": src.numpy()})
    cache = dense.start_cache(dense.encode(src))
    worst = max(
        float(abs(t.numpy() - o).max())
        for (k, v, _), ok, ov in zip(cache.cross, cross[0::2], cross[1::2], strict=True)
        for t, o in ((k, ok), (v, ov))
    )
    cache.select(tile)
    feeds = {"padding_mask": padding[tile.numpy()]}
    feeds.update((n, t[tile.numpy()]) for n, t in zip(names["cross"], cross, strict=True))
    for i, heads in enumerate(dense.arch.decoder_self_attention_heads):
        empty = np.zeros((2 * beam, heads, 0, dense.space.qkv_dim // heads), dtype=np.float32)
        feeds[f"past_k_{i}"] = feeds[f"past_v_{i}"] = empty
    for step in range(length):
        feeds["tokens"] = tokens[:, step : step + 1].numpy()
        logits, *present = decoder_session.run(None, feeds)
        reference = dense.decode(tokens[:, step : step + 1], None, cache)[:, -1]  # type: ignore[arg-type]
        worst = max(worst, float(abs(reference.numpy() - logits).max()))
        feeds.update(zip(names["past"], present, strict=True))
    return worst
