"""Fixtures shared by the unit tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasflow.space import get_space
from nasflow.tfs_eval_build import SplitSettings, build_tfs_eval

# Nine demo architectures; the `tfs_eval` fixture gives them BLEU growing with embedding size.
TINY_ARCHS = get_space("demo").sample_unique(9, seed=5)


@pytest.fixture()
def tfs_eval(tmp_path: Path) -> Path:
    """A built TFS-Eval set of TINY_ARCHS, split seeds 1 and 2 (3 train, 6 test each), whose
    BLEU grows with the embedding size."""
    scores = []
    for arch in TINY_ARCHS:
        path = tmp_path / "tfs" / arch.id / "score.json"
        path.parent.mkdir(parents=True)
        bleu = arch.encoder_embed_dim / 10 + arch.decoder_layer_num
        score = {"arch": arch.to_dict(), "valid": {"bleu": bleu, "loss_bits": 4.0}}
        path.write_text(json.dumps({**score, "test": {"bleu": bleu + 1}}))
        scores.append(path)
    data = tmp_path / "data"
    data.mkdir()
    manifest = {"vocab_size": 500, "languages": {"source": "en", "target": "de"}}
    (data / "manifest.json").write_text(json.dumps({**manifest, "corpus": "multi30k"}))
    (data / "train.en").write_text("a b\nc d\n")
    (data / "train.de").write_text("e f\ng h\n")
    out = tmp_path / "tfs_eval"
    build_tfs_eval(scores, data, out, "demo", SplitSettings((1, 2), train_size=3))
    return out
