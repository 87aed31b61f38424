"""ONNX export: encoder and decoder-step graphs equal PyTorch; the export command."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from nasflow.cli import main
from nasflow.efficiency.onnx_export import ExportedModel, ExportError, export_onnx, verify_export
from nasflow.model import ModelConfig, SuperTransformer
from nasflow.model.checkpoint import save_model
from nasflow.space.hat import get_space

TOLERANCE = 1e-4


def _archs():
    space = get_space("demo")
    rng = random.Random(5)
    sampled = [space.sample(rng) for _ in range(3)]
    # every arbitrary-attention value and both decoder depth extremes
    deep = space.largest().replace(decoder_arbitrary_ende_attn=(-1, 1, 2))
    return [space.smallest(), deep, *sampled]


@pytest.mark.parametrize("arch", _archs(), ids=lambda arch: arch.id)
def test_onnx_graphs_match_pytorch(arch, tmp_path: Path) -> None:
    torch.manual_seed(0)
    supernet = SuperTransformer(get_space("demo"), 80, ModelConfig(max_positions=32))
    supernet.set_arch(arch)
    exported = export_onnx(supernet, tmp_path)
    assert exported.meta["arch_id"] == arch.id and exported.layers == arch.decoder_layer_num
    assert verify_export(supernet, exported, length=7, beam=3) < TOLERANCE


def test_separate_embeddings_space_exports(tmp_path: Path) -> None:
    space = get_space("hat-iwslt")
    model = SuperTransformer(space, 50, ModelConfig(max_positions=32), layout=space.smallest())
    exported = export_onnx(model, tmp_path)
    assert verify_export(model, exported, length=5) < TOLERANCE


def test_incomplete_export_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "encoder.onnx").write_bytes(b"")
    with pytest.raises(ExportError, match=r"lacks decoder.onnx, export.json"):
        ExportedModel.load(tmp_path)


def test_export_command(tmp_path: Path, capsys) -> None:
    space = get_space("demo")
    supernet = SuperTransformer(space, 60, ModelConfig(max_positions=32))
    save_model(tmp_path / "supernet.pt", supernet, {})
    dense = supernet.extract(space.smallest())
    save_model(tmp_path / "dense.pt", dense, {})

    assert (
        main(["export-onnx", "--model", str(tmp_path / "dense.pt"), "--out", str(tmp_path / "a")])
        == 0
    )
    meta = json.loads((tmp_path / "a" / "export.json").read_text())
    assert meta["arch_id"] == space.smallest().id and meta["source_model"].endswith("dense.pt")

    assert (
        main(
            ["export-onnx", "--model", str(tmp_path / "supernet.pt"), "--out", str(tmp_path / "b")]
        )
        == 2
    )
    assert "is a supernet: pass --arch" in capsys.readouterr().err
    arch = space.largest().to_json()
    args = [
        "export-onnx",
        "--model",
        str(tmp_path / "supernet.pt"),
        "--arch",
        arch,
        "--out",
        str(tmp_path / "b"),
    ]
    assert main(args) == 0
    assert ExportedModel.load(tmp_path / "b").meta["arch_id"] == space.largest().id
