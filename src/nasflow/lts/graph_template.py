"""The measurement's fast graph path: the exporter's prompt and step graphs of a GPT-2 decoder
without exporting its weights (`LTSMeasureSettings.graphs = "template"`).

Why: `torch.onnx.export` of a 120M-180M-parameter decoder (plus GPT-2's 50257-token head) takes
tens of seconds, nearly all of it spent on the weights (tracing, folding and serialising about
1.2 GB per graph); the same export of a structurally identical *small* model takes a tenth of a
second. The graphs' nodes depend on the architecture only through the layer count, each layer's
head count, and three integer constants per layer (the fused QKV split `[d, d, d]` and the head
split `[h, d // h]` of queries, keys and values); every other size lives in the weights' shapes.

So `template_graphs(arch, vocab_size, n_positions)`:

1. exports (once per layer count and head counts, cached) the decoder with the same layers and
   head counts but a *marker* width `d' = lcm(heads) * 13` (every `d' // h` a distinct multiple
   of 13, never one of the graph's other integers), FFN width 1, a 2-token vocabulary and 8
   positions, with `nasflow.lts.onnx_export`'s modules, names, dynamic axes and opset,
   `export_params=False` and no constant folding (the weights become graph inputs);
2. rewrites the marker constants to the real `[d, d, d]` and `[h_i, d // h_i]` (exactly one split
   and three head splits per layer, else `TemplateError`), replaces each `Transpose(weight)` by
   a pre-transposed weight input `<weight>.T` (what the exporter's constant folding makes of a
   `Linear`), sets the static sizes of the inputs and outputs to the real ones, and drops the
   exporter's intermediate shape annotations (ONNX Runtime infers them again);
3. returns both graphs (a few hundred kB each) and the real shape of every weight input.

`template_session(graph, weights, threads)` declares the weight inputs as initializers whose data
the session options supply (`add_external_initializers`, no copy, no serialisation), with the
options of every latency measurement (`nasflow.core.ort.ort_options`). `weight_values(shapes,
seed)` gives seeded weights (matrices are views of one buffer of N(0, 0.02) values: the latency
of a dense fp32 graph does not depend on the values); `weight_arrays(model)` a trained model's.

With the same weights, the sessions compute exactly what `export_lts`'s graphs compute and run
the same nodes after ONNX Runtime's optimisation (`tests/unit/test_lts_fast_measure.py`).
Transformer-XL decoders have no template.

The template is a TorchScript-exporter graph (`dynamo=False`, as `export_lts`): the rewrites
above read that exporter's nodes (its `Split`/`Reshape` constants, its `Transpose` of weights).
The torch.export-based exporter builds a different graph, and needs `onnxscript`, which nasflow
does not install; see `nasflow.efficiency.onnx_export`.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from nasflow.core.errors import NasflowError
from nasflow.space.gpt import GPTArch

__all__ = [
    "MARKER",
    "TemplateError",
    "template_graphs",
    "template_session",
    "weight_arrays",
    "weight_values",
]

#: The marker head width is a multiple of this prime.
MARKER = 13
_LAYER = re.compile(r"^(?:/model)?/blocks\.(\d+)/attn/")


class TemplateError(NasflowError):
    """A graph template cannot be built or does not have the expected structure."""


def template_graphs(
    arch: GPTArch, vocab_size: int, n_positions: int
) -> tuple[bytes, bytes, dict[str, list[int]]]:
    """`(prompt graph, step graph, {weight input: real shape})` of `arch` (module docstring).
    The weightless exports are cached per layer count and head counts."""
    import torch

    from nasflow.lts.model import build_decoder

    width = math.lcm(*arch.n_head) * MARKER
    with torch.device("meta"):
        real = build_decoder(arch, "gpt2", vocab_size, n_positions, 0.0)
    shapes = {f"model.{k}": list(v.shape) for k, v in real.state_dict().items()}
    used: dict[str, list[int]] = {}
    graphs = [
        _patch(raw, arch, width, vocab_size, shapes, used)
        for raw in _weightless(arch.n_layer, arch.n_head)
    ]
    return graphs[0], graphs[1], used


@functools.lru_cache(maxsize=64)
def _weightless(n_layer: int, n_head: tuple[int, ...]) -> tuple[bytes, bytes]:
    """The exporter's prompt and step graphs of a marker-width decoder with these layer and
    head counts, weights as inputs."""
    import torch

    from nasflow.efficiency.onnx_export import exporter_warnings
    from nasflow.lts.model import build_decoder
    from nasflow.lts.onnx_export import OPSET, gpt_graph_specs

    arch = GPTArch(n_layer, math.lcm(*n_head) * MARKER, (1,) * n_layer, n_head)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_decoder(arch, "gpt2", 2, 8, 0.0).eval()
        with torch.no_grad():  # distinct values: the exporter merges equal weight inputs
            for param in model.parameters():
                param.normal_()
    graphs = []
    for graph, inputs, (input_names, outputs), dynamic in gpt_graph_specs(model):
        buffer = io.BytesIO()
        with torch.no_grad(), exporter_warnings():
            torch.onnx.export(
                graph,
                inputs,
                buffer,
                input_names=input_names,
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
                export_params=False,
                do_constant_folding=False,
            )
        graphs.append(buffer.getvalue())
    return graphs[0], graphs[1]


def _patch(
    data: bytes,
    arch: GPTArch,
    width: int,
    vocab_size: int,
    shapes: Mapping[str, list[int]],
    used: dict[str, list[int]],
) -> bytes:
    """One template graph made real: marker constants and static input/output sizes rewritten,
    each `Transpose(weight)` replaced by a pre-transposed weight input `<weight>.T` (as the
    exporter's constant folding does), weights unused after that dropped; the weight inputs
    left are added to `used`."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(data)
    graph = model.graph
    if len(graph.initializer):
        raise TemplateError("the template graph holds initializers; expected none")
    d = arch.d_model
    splits = [0] * arch.n_layer
    heads = [0] * arch.n_layer
    renamed: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        if node.op_type == "Transpose" and node.input[0] in shapes:
            base = node.input[0]
            renamed[node.output[0]] = f"{base}.T"
            used[f"{base}.T"] = list(reversed(shapes[base]))
            continue
        nodes.append(node)
        match = _LAYER.match(node.name)
        if node.op_type != "Constant" or match is None:
            continue
        layer = int(match.group(1))
        tensor = node.attribute[0].t
        value = numpy_helper.to_array(tensor)
        if value.dtype != np.int64 or value.ndim != 1:
            continue
        h = arch.n_head[layer]
        if value.tolist() == [width] * 3:
            new = np.array([d] * 3, dtype=np.int64)
            splits[layer] += 1
        elif value.tolist() == [h, width // h]:
            new = np.array([h, d // h], dtype=np.int64)
            heads[layer] += 1
        else:
            continue
        tensor.CopyFrom(numpy_helper.from_array(new, tensor.name))
    if splits != [1] * arch.n_layer or heads != [3] * arch.n_layer:
        raise TemplateError(
            f"unexpected template structure for {arch.describe()}: QKV splits per layer "
            f"{splits}, head splits per layer {heads} (expected 1 and 3)"
        )
    consumed = set()
    for node in nodes:
        for k, name in enumerate(node.input):
            if name in renamed:
                node.input[k] = renamed[name]
        consumed.update(node.input)
    del graph.node[:]
    graph.node.extend(nodes)
    inputs = [i for i in graph.input if i.name not in shapes or i.name in consumed]
    for name in sorted(set(renamed.values())):
        inputs.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, used[name]))
    del graph.input[:]
    graph.input.extend(inputs)
    for value_info in (*graph.input, *graph.output):
        dims = value_info.type.tensor_type.shape.dim
        name = value_info.name
        if name in shapes:
            used[name] = list(shapes[name])
            for dim, size in zip(dims, shapes[name], strict=True):
                dim.dim_value = size
        elif name == "logits":
            dims[1].dim_value = vocab_size
        elif name.startswith(("past_", "present_")):
            h = arch.n_head[int(name.rsplit("_", 1)[1])]
            dims[1].dim_value = h
            dims[3].dim_value = d // h
    del graph.value_info[:]
    return model.SerializeToString()


_BLOCK = 2**20
_buffers: dict[int, np.ndarray] = {}


def weight_values(shapes: Mapping[str, list[int]], seed: int) -> dict[str, np.ndarray]:
    """Seeded weights of the given shapes: biases 0, LayerNorm scales 1, every matrix a view of
    one buffer holding a block of 2**20 N(0, 0.02) values drawn from `seed`, repeated. The
    latency of a dense fp32 graph does not depend on the values, ONNX Runtime packs every
    matrix it multiplies into its own buffer, and the views cost nothing, where drawing 300M
    fresh values would take seconds. The buffer is kept for the next call (a long-lived
    measurement worker reuses it)."""
    need = max((int(np.prod(s)) for s in shapes.values() if len(s) > 1), default=0)
    buffer = _buffers.get(seed)
    if buffer is None or buffer.size < need:
        block = np.random.default_rng(seed).standard_normal(_BLOCK, dtype=np.float32)
        block *= np.float32(0.02)
        _buffers.clear()
        buffer = _buffers[seed] = np.resize(block, max(need, _BLOCK))
    out = {}
    for name, shape in shapes.items():
        if name.endswith(".bias"):
            out[name] = np.zeros(shape, dtype=np.float32)
        elif len(shape) == 1:
            out[name] = np.ones(shape, dtype=np.float32)
        else:
            out[name] = buffer[: int(np.prod(shape))].reshape(shape)
    return out


def template_session(
    data: bytes, weights: Mapping[str, np.ndarray], threads: int, device: str = "cpu"
) -> Any:
    """An ONNX Runtime session (the options of `nasflow.core.ort.ort_session`) of the template
    graph `data` with its weight inputs made constant initializers holding `weights` (shared,
    not copied: the prompt and step sessions of one decoder use the same arrays)."""
    import onnx
    import onnxruntime as ort

    from nasflow.core.ort import ort_options

    model = onnx.load_from_string(data)
    graph = model.graph
    names = [i.name for i in graph.input if i.name in weights]
    missing = [i.name for i in graph.input if i.name not in weights and "." in i.name]
    if missing:
        raise TemplateError(f"no weights given for template input(s) {', '.join(missing)}")
    kept = [i for i in graph.input if i.name not in weights]
    for name in names:
        tensor = onnx.TensorProto(name=name, data_type=onnx.TensorProto.FLOAT)
        tensor.dims.extend(weights[name].shape)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "supplied-by-session-options"
        graph.initializer.append(tensor)
    del graph.input[:]
    graph.input.extend(kept)
    options, providers = ort_options(threads, device)
    arrays = [np.ascontiguousarray(weights[n], dtype=np.float32) for n in names]
    options.add_external_initializers(names, [ort.OrtValue.ortvalue_from_numpy(a) for a in arrays])
    session = ort.InferenceSession(model.SerializeToString(), options, providers=providers)
    session._nasflow_weights = arrays  # the session reads these buffers: keep them alive
    return session


def weight_arrays(model: Any) -> dict[str, np.ndarray]:
    """A `GPTDecoder`'s weights by template input name (`model.` + state-dict key, and
    `<name>.T` transposed)."""
    out = {f"model.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    out.update({f"{k}.T": np.ascontiguousarray(v.T) for k, v in list(out.items()) if v.ndim == 2})
    return out
