"""Fixtures shared by the unit tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasflow.space.hat import get_space
from nasflow.tfs.build import SplitSettings, build_tfs_eval

# Nine demo architectures; the `tfs_eval` fixture gives them BLEU growing with embedding size.
TINY_ARCHS = get_space("demo").sample_unique(9, seed=5)


def build_tiny_tfs_eval(tmp_path: Path, supernet_quality: bool = False) -> Path:
    """A built TFS-Eval set of TINY_ARCHS, split seeds 1 and 2 (3 train, 6 test each), whose
    BLEU grows with the embedding size; with `supernet_quality`, a stored `Supernet (loss)`
    block as `nasflow tfs-eval build --supernet-quality` writes it."""
    scores = []
    for arch in TINY_ARCHS:
        path = tmp_path / "tfs" / arch.id / "score.json"
        path.parent.mkdir(parents=True)
        bleu = arch.encoder_embed_dim / 10 + arch.decoder_layer_num
        score = {"arch": arch.to_dict(), "valid": {"bleu": bleu, "loss_bits": 4.0}}
        path.write_text(json.dumps({**score, "test": {"bleu": bleu + 1}}))
        scores.append(path)
    quality = None
    if supernet_quality:
        quality = tmp_path / "supernet_quality.json"
        rows = [{"arch_id": a.id, "predicted": -5.0 + a.decoder_layer_num / 10} for a in TINY_ARCHS]
        quality.write_text(
            json.dumps({"predictor": "Supernet (loss)", "bleu_scale": False, "rows": rows})
        )
    data = tmp_path / "data"
    data.mkdir()
    manifest = {"vocab_size": 500, "languages": {"source": "en", "target": "de"}}
    (data / "manifest.json").write_text(json.dumps({**manifest, "corpus": "multi30k"}))
    (data / "train.en").write_text("a b\nc d\n")
    (data / "train.de").write_text("e f\ng h\n")
    out = tmp_path / "tfs_eval"
    split = SplitSettings((1, 2), train_size=3)
    build_tfs_eval(scores, data, out, "demo", split, supernet_quality=quality)
    return out


@pytest.fixture()
def tfs_eval(tmp_path: Path) -> Path:
    """`build_tiny_tfs_eval` without a supernet block."""
    return build_tiny_tfs_eval(tmp_path)


@pytest.fixture()
def tfs_eval_with_supernet(tmp_path: Path) -> Path:
    """`build_tiny_tfs_eval` with a stored `Supernet (loss)` block."""
    return build_tiny_tfs_eval(tmp_path, supernet_quality=True)
