"""ONNX export of one LTS decoder for text prediction: a prompt graph and a decoder-step graph.

- `prompt.onnx`: `tokens [B, P]` int64 -> `logits [B, V]` of the **last** prompt position (the
  distribution of the first predicted token; the head is applied to that position only, as a
  deployed predictor does) and, for every layer i, `present_k_i`, `present_v_i`
  `[B, H_i, P, d_model // H_i]`.
- `step.onnx`: one incremental step. Inputs `tokens [B, 1]` int64 and the cache `past_k_i`,
  `past_v_i` `[B, H_i, S, d_model // H_i]`; outputs `logits [B, V]` and `present_k_i`,
  `present_v_i` `[B, H_i, S + 1, d_model // H_i]`. The step's position is the cache length S,
  read from the shape of the cache.

Batch, prompt length and cache length are dynamic. Layers may differ in `n_head` and `d_inner`
(each layer's cache has its own head count). `export.json` records the architecture, vocabulary,
positions, parameter counts, opset and library versions. Export uses the TorchScript exporter
(`dynamo=False`) at opset 18, fp32 on CPU, as `nasflow.efficiency.onnx_export` does (its module
docstring says why: no `onnxscript`, and `nasflow.lts.graph_template` patches these graphs).

A Transformer-XL decoder (`nasflow.lts.txl_model`) has no key/value cache: its "cache" is the
recurrence memory, an input of both graphs (`TXLGraph`):

- `prompt.onnx`: `tokens [B, P]` and `past_mem_i [B, M, d_model]` (empty, `M = 0`, for a fresh
  prompt) -> `logits [B, V]` of the last position (log-probabilities with the adaptive softmax;
  `export.json` says which under `output`) and `present_mem_i [B, min(M + P, mem_len), d_model]`;
- `step.onnx`: the same with `tokens [B, 1]`.

`export.json` then also holds `backbone: transformer-xl` and the model's options (`mem_len`,
`softmax`, `cutoffs`, `div_val`, `pre_lnorm`); GPT-2 exports are unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nasflow.core.io import atomic_path, write_json_atomic
from nasflow.efficiency.onnx_export import ExportError, exporter_warnings
from nasflow.lts.model import Decoder, GPTDecoder, KVCache
from nasflow.lts.txl_model import TXLDecoder
from nasflow.space.gpt import GPTArch
from nasflow.space.gpt_params import decoder_params, total_params

__all__ = [
    "META_FILE",
    "OPSET",
    "PROMPT_FILE",
    "STEP_FILE",
    "ExportError",
    "ExportedLTS",
    "PromptGraph",
    "StepGraph",
    "TXLGraph",
    "export_lts",
    "lts_names",
    "txl_names",
    "verify_lts_export",
]

OPSET = 18
PROMPT_FILE = "prompt.onnx"
STEP_FILE = "step.onnx"
META_FILE = "export.json"


def lts_names(n_layer: int) -> dict[str, list[str]]:
    """Graph input/output names of the key/value cache (`k` then `v` for each layer)."""
    return {
        "past": [f"past_{kind}_{i}" for i in range(n_layer) for kind in ("k", "v")],
        "present": [f"present_{kind}_{i}" for i in range(n_layer) for kind in ("k", "v")],
    }


def txl_names(n_layer: int) -> dict[str, list[str]]:
    """Graph input/output names of the Transformer-XL memory (one tensor per layer)."""
    return {
        "past": [f"past_mem_{i}" for i in range(n_layer)],
        "present": [f"present_mem_{i}" for i in range(n_layer)],
    }


def _flat(present: KVCache) -> list[Tensor]:
    return [t for kv in present for t in kv]


class PromptGraph(nn.Module):
    """The prompt pass: every prompt position through the blocks, the head on the last one."""

    def __init__(self, model: GPTDecoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = m.drop(m.wte(tokens) + m.wpe(positions))
        present: KVCache = []
        for block in m.blocks:
            x, kv = block(x)
            present.append(kv)
        logits = m.lm_head(m.ln_f(x[:, -1]))
        return (logits, *_flat(present))


class StepGraph(nn.Module):
    """One decoder step over a flat `(past_k_0, past_v_0, past_k_1, ...)` cache."""

    def __init__(self, model: GPTDecoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, *cache: Tensor) -> tuple[Tensor, ...]:
        past = [(cache[2 * i], cache[2 * i + 1]) for i in range(len(cache) // 2)]
        logits, present = self.model(tokens, past)
        return (logits[:, -1], *_flat(present))


class TXLGraph(nn.Module):
    """A Transformer-XL segment over a flat memory `(past_mem_0, past_mem_1, ...)`: the head on
    the last position, then the new memory (the prompt and the step graph alike)."""

    def __init__(self, model: TXLDecoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, *mems: Tensor) -> tuple[Tensor, ...]:
        hidden, new_mems = self.model.hidden(tokens, list(mems))
        return (self.model.head(hidden[:, -1]), *new_mems)


@dataclass(frozen=True)
class ExportedLTS:
    """Paths and metadata of an `export_lts` folder."""

    folder: Path
    meta: dict[str, Any]

    @property
    def prompt(self) -> Path:
        return self.folder / PROMPT_FILE

    @property
    def step(self) -> Path:
        return self.folder / STEP_FILE

    @property
    def arch(self) -> GPTArch:
        return GPTArch.from_dict(self.meta["arch"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def backbone(self) -> str:
        return str(self.meta.get("backbone", "gpt2"))

    @classmethod
    def load(cls, folder: str | Path) -> ExportedLTS:
        """An existing export folder (`export.json` is written last, so its presence means the
        graphs are complete)."""
        folder = Path(folder)
        missing = [n for n in (PROMPT_FILE, STEP_FILE, META_FILE) if not (folder / n).exists()]
        if missing:
            raise ExportError(f"LTS ONNX export folder {folder} lacks {', '.join(missing)}")
        return cls(folder, json.loads((folder / META_FILE).read_text()))


def _versions() -> dict[str, str]:
    import onnx

    out = {"torch": str(torch.__version__), "onnx": str(onnx.__version__)}
    try:
        import onnxruntime

        out["onnxruntime"] = str(onnxruntime.__version__)
    except ImportError:  # pragma: no cover - onnxruntime is a dependency of the measurement only
        pass
    return out


def export_lts(
    model: Decoder, folder: str | Path, *, meta: dict[str, Any] | None = None
) -> ExportedLTS:
    """Export `model` (a `GPTDecoder` or a `TXLDecoder`) as prompt and step graphs (fp32, CPU,
    eval mode; the model is moved there for the export and put back on its device, dtype and
    train/eval mode afterwards).

    Files are written atomically, `export.json` last; it records the architecture, its id,
    `vocab_size`, `n_positions`, decoder and total parameters, the opset, library versions and
    `meta` (and for Transformer-XL the backbone and its options).
    """
    if isinstance(model, TXLDecoder):
        return _export_txl(model, Path(folder), meta)
    if not isinstance(model, GPTDecoder):
        raise ExportError(
            f"export_lts needs a GPTDecoder or a TXLDecoder, got {type(model).__name__}"
        )
    was_training = model.training
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    model = model.to("cpu", torch.float32).eval()
    arch = model.arch
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad(), exporter_warnings():
            for (graph, inputs, names, dynamic), file in zip(
                gpt_graph_specs(model), (PROMPT_FILE, STEP_FILE), strict=True
            ):
                _write_graph(graph, inputs, folder / file, names, dynamic)
    finally:
        model.to(device, dtype).train(was_training)
    info = _export_info(
        model,
        meta,
        decoder_params=decoder_params(arch),
        total_params=total_params(arch, model.vocab_size, model.n_positions),
    )
    write_json_atomic(folder / META_FILE, info)
    return ExportedLTS(folder, info)


GraphSpec = tuple[
    nn.Module, tuple[Tensor, ...], tuple[list[str], list[str]], dict[str, dict[int, str]]
]


def gpt_graph_specs(model: GPTDecoder) -> list[GraphSpec]:
    """The prompt and the step graph of a GPT-2 decoder as exported: `(module, example inputs,
    (input names, output names), dynamic axes)` each (the one definition `export_lts` and
    `nasflow.lts.graph_template` share)."""
    arch = model.arch
    names = lts_names(arch.n_layer)
    outputs = ["logits", *names["present"]]
    prompt_len = min(5, model.n_positions)
    prompt_dynamic: dict[str, dict[int, str]] = {
        "tokens": {0: "batch", 1: "prompt_length"},
        "logits": {0: "batch"},
    }
    prompt_dynamic.update((n, {0: "batch", 2: "prompt_length"}) for n in names["present"])
    past_len = max(0, min(4, model.n_positions - 1))
    cache = [
        torch.zeros((1, h, past_len, arch.d_model // h)) for h in arch.n_head for _ in ("k", "v")
    ]
    step_dynamic: dict[str, dict[int, str]] = {"tokens": {0: "batch"}, "logits": {0: "batch"}}
    step_dynamic.update((n, {0: "batch", 2: "past_length"}) for n in names["past"])
    step_dynamic.update((n, {0: "batch", 2: "present_length"}) for n in names["present"])
    return [
        (
            PromptGraph(model),
            (torch.zeros((1, prompt_len), dtype=torch.long),),
            (["tokens"], outputs),
            prompt_dynamic,
        ),
        (
            StepGraph(model),
            (torch.zeros((1, 1), dtype=torch.long), *cache),
            (["tokens", *names["past"]], outputs),
            step_dynamic,
        ),
    ]


def _write_graph(
    graph: nn.Module,
    inputs: tuple[Tensor, ...],
    path: Path,
    names: tuple[list[str], list[str]],
    dynamic: dict[str, dict[int, str]],
) -> None:
    """One ONNX graph (TorchScript exporter, `OPSET`) written atomically to `path`."""
    with atomic_path(path) as tmp:
        torch.onnx.export(
            graph,
            inputs,
            str(tmp),
            input_names=names[0],
            output_names=names[1],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )


def _export_info(model: Any, meta: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    """`export.json`: the architecture, its sizes and counts, the exporter and `meta`."""
    arch = model.arch
    return {
        "arch": arch.to_dict(),
        "arch_id": arch.id,
        "vocab_size": model.vocab_size,
        "n_positions": model.n_positions,
        "n_layer": arch.n_layer,
        **extra,
        "opset": OPSET,
        "versions": _versions(),
        **(meta or {}),
    }


def _export_txl(model: TXLDecoder, folder: Path, meta: dict[str, Any] | None) -> ExportedLTS:
    """`export_lts` for a Transformer-XL decoder (graphs in the module docstring)."""
    was_training = model.training
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    model = model.to("cpu", torch.float32).eval()
    arch = model.arch
    folder.mkdir(parents=True, exist_ok=True)
    names = txl_names(arch.n_layer)
    graph = TXLGraph(model)
    mems = [torch.zeros((1, 4, arch.d_model)) for _ in range(arch.n_layer)]
    try:
        with torch.no_grad(), exporter_warnings():
            for file, length, axis in ((PROMPT_FILE, 5, "prompt_length"), (STEP_FILE, 1, None)):
                dynamic: dict[str, dict[int, str]] = {
                    "tokens": {0: "batch"} if axis is None else {0: "batch", 1: axis},
                    "logits": {0: "batch"},
                }
                dynamic.update((n, {0: "batch", 1: "past_length"}) for n in names["past"])
                dynamic.update((n, {0: "batch", 1: "present_length"}) for n in names["present"])
                _write_graph(
                    graph,
                    (torch.zeros((1, length), dtype=torch.long), *mems),
                    folder / file,
                    (["tokens", *names["past"]], ["logits", *names["present"]]),
                    dynamic,
                )
    finally:
        model.to(device, dtype).train(was_training)
    info = _export_info(
        model,
        meta,
        backbone="transformer-xl",
        d_model=arch.d_model,
        mem_len=model.mem_len,
        softmax=model.softmax,
        cutoffs=list(model.cutoffs),
        div_val=model.div_val,
        pre_lnorm=model.pre_lnorm,
        output=model.output,
        decoder_params=decoder_params(arch, "transformer-xl"),
        total_params=model.total_param_count(),
    )
    write_json_atomic(folder / META_FILE, info)
    return ExportedLTS(folder, info)


def _worst(refs: list[Tensor], outputs: list[np.ndarray]) -> float:
    """Largest absolute difference of ONNX Runtime `outputs` from PyTorch `refs`."""
    if len(refs) != len(outputs):
        raise ExportError(f"ONNX graph gave {len(outputs)} outputs, expected {len(refs)}")
    worst = 0.0
    for ref, out in zip(refs, outputs, strict=True):
        if tuple(ref.shape) != tuple(out.shape):
            raise ExportError(f"ONNX output shape {tuple(out.shape)} != PyTorch {tuple(ref.shape)}")
        worst = max(worst, float(np.abs(ref.numpy() - out).max(initial=0.0)))
    return worst


def _verify_txl(model: TXLDecoder, exported: ExportedLTS, tokens: Tensor, prompt_len: int) -> float:
    """`verify_lts_export` for Transformer-XL: the prompt from an empty memory, then one step per
    further token fed with the memory ONNX Runtime returned."""
    from nasflow.core.ort import ort_session

    names = txl_names(model.arch.n_layer)
    prompt_session = ort_session(exported.prompt, threads=1)
    step_session = ort_session(exported.step, threads=1)
    mems = [m.numpy() for m in model.init_mems(1, "cpu")]
    worst, start = 0.0, 0
    for session, end in [(prompt_session, prompt_len)] + [
        (step_session, i + 1) for i in range(prompt_len, tokens.shape[1])
    ]:
        segment = tokens[:, start:end]
        feeds = {"tokens": segment.numpy(), **dict(zip(names["past"], mems, strict=True))}
        outputs = session.run(None, feeds)
        out, new_mems = model(segment, [torch.from_numpy(m) for m in mems])
        worst = max(worst, _worst([out[:, -1], *new_mems], outputs))
        mems, start = outputs[1:], end
    return worst


@torch.no_grad()
def verify_lts_export(
    model: Decoder, exported: ExportedLTS, prompt_len: int = 8, steps: int = 4
) -> float:
    """Largest absolute difference between ONNX Runtime and PyTorch eager (`model.forward`, not
    the export wrappers) over a random prompt of `prompt_len` tokens and then `steps` decoder
    steps fed with the cache ONNX Runtime returned: last-position logits and every layer's
    present keys and values (for Transformer-XL: the last position's output and the memory,
    the prompt starting from an empty memory)."""
    from nasflow.core.ort import ort_session

    if prompt_len < 1 or steps < 0 or prompt_len + steps > model.n_positions:
        raise ValueError(
            f"need prompt_len >= 1, steps >= 0 and prompt_len + steps <= n_positions "
            f"({model.n_positions}), got {prompt_len}, {steps}"
        )
    was_training = model.training
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    model = model.to("cpu", torch.float32).eval()
    try:
        names = lts_names(model.arch.n_layer)
        generator = torch.Generator().manual_seed(0)
        tokens = torch.randint(0, model.vocab_size, (1, prompt_len + steps), generator=generator)
        if isinstance(model, TXLDecoder):
            return _verify_txl(model, exported, tokens, prompt_len)
        prompt_session = ort_session(exported.prompt, threads=1)
        step_session = ort_session(exported.step, threads=1)

        def worst_of(ref_logits: Tensor, ref_present: KVCache, outputs: list[np.ndarray]) -> float:
            return _worst([ref_logits, *_flat(ref_present)], outputs)

        prompt = tokens[:, :prompt_len]
        outputs = prompt_session.run(None, {"tokens": prompt.numpy()})
        logits, present = model(prompt)
        worst = worst_of(logits[:, -1], present, outputs)
        cache = outputs[1:]
        for step in range(steps):
            token = tokens[:, prompt_len + step : prompt_len + step + 1]
            feeds = {"tokens": token.numpy(), **dict(zip(names["past"], cache, strict=True))}
            outputs = step_session.run(None, feeds)
            past = [
                (torch.from_numpy(cache[2 * i]), torch.from_numpy(cache[2 * i + 1]))
                for i in range(model.arch.n_layer)
            ]
            logits, present = model(token, past)
            worst = max(worst, worst_of(logits[:, -1], present, outputs))
            cache = outputs[1:]
        return worst
    finally:
        model.to(device, dtype).train(was_training)
