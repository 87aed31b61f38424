"""The training, scoring, quality and translation commands, end to end on the toy task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from nasflow.cli import main
from nasflow.space.hat import get_space

TINY = {
    "max_updates": 6,
    "warmup_updates": 2,
    "max_tokens": 400,
    "save_interval_updates": 3,
    "valid_interval_updates": 3,
    "log_interval_updates": 1,
    "device": "cpu",
}


def _config(tmp_path: Path, **sections) -> Path:
    config = {
        "experiment": "cli",
        "space": "demo",
        "threads": 1,
        "data": {"corpus": "multi30k", "source_lang": "en", "target_lang": "de"},
        "model": {"dropout": 0.1, "max_positions": 64},
        "supernet": {**TINY, "sampling": "spos"},
        "train": TINY,
        "evaluate": {"beam": 2, "max_len_a": 1.0, "max_len_b": 4, "valid_sentences": 20},
        **sections,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _arch_train(config: Path, arch, data: Path, out: Path, state: Path, *extra: str) -> int:
    return main(
        ["arch", "train", "--config", str(config), "--arch", arch, "--data", str(data),
         "--out", str(out), "--curve", str(out.with_suffix(".csv")), "--state-dir", str(state),
         "--no-progress", *extra]
    )  # fmt: skip


def test_arch_train_score_translate(tiny_data: Path, tmp_path: Path, capsys) -> None:
    config = _config(tmp_path)
    arch = get_space("demo").smallest()
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(arch.to_json())
    model = tmp_path / "model.pt"
    assert _arch_train(config, str(arch_file), tiny_data, model, tmp_path / "state") == 0
    assert model.is_file() and model.with_suffix(".csv").read_text().count("\n") == 7
    scores = tmp_path / "score.json"
    assert main(["arch", "score", "--config", str(config), "--model", str(model),
                 "--data", str(tiny_data), "--out", str(scores),
                 "--hypotheses", str(tmp_path / "hyp")]) == 0  # fmt: skip
    result = json.loads(scores.read_text())
    assert result["arch_id"] == arch.id and result["model"]["training"]["updates"] == 6
    for role in ("valid", "test"):
        assert 0.0 <= result[role]["bleu"] <= 100.0 and result[role]["loss_bits"] > 0
        assert result[role]["bleu_signature"].startswith("nrefs:1")
    hyps = (tmp_path / "hyp" / "test.hyp.de").read_text().splitlines()
    assert len(hyps) == result["test"]["sentences"]
    source = tmp_path / "input.txt"
    source.write_text("kan los mir\ntup\n")
    output = tmp_path / "output.txt"
    code = main(["translate", "--model", str(model), "--data", str(tiny_data),
                 "--input", str(source), "--out", str(output),
                 "--device", "cpu", "--beam", "2"])  # fmt: skip
    assert code == 0
    assert len(output.read_text().splitlines()) == 2


def test_supernet_train_and_quality(tiny_data: Path, tmp_path: Path) -> None:
    config = _config(tmp_path)
    supernet = tmp_path / "supernet.pt"
    assert main(["supernet", "train", "--config", str(config), "--data", str(tiny_data),
                 "--out", str(supernet), "--state-dir", str(tmp_path / "s"),
                 "--no-progress"]) == 0  # fmt: skip
    score_files = []
    for index, arch in enumerate(get_space("demo").sample_unique(3, seed=2)):
        model = tmp_path / f"m{index}.pt"
        state = tmp_path / f"st{index}"
        assert _arch_train(config, arch.to_json(), tiny_data, model, state) == 0
        score = tmp_path / f"score{index}.json"
        assert main(["arch", "score", "--config", str(config), "--model", str(model),
                     "--data", str(tiny_data), "--roles", "valid,test",
                     "--out", str(score)]) == 0  # fmt: skip
        score_files.append(str(score))
    # A layer-wise Mixture-of-Supernets trained by the same command (`supernet.kind`).
    mos_config = tmp_path / "mos.yaml"
    data = yaml.safe_load(config.read_text())
    data["supernet"] = {**data.get("supernet", {}), "kind": "layer-mos", "router_hidden": 8}
    mos_config.write_text(yaml.safe_dump(data))
    mos = tmp_path / "mos.pt"
    assert main(["supernet", "train", "--config", str(mos_config), "--data", str(tiny_data),
                 "--out", str(mos), "--state-dir", str(tmp_path / "s-mos"),
                 "--no-progress"]) == 0  # fmt: skip
    quality = tmp_path / "quality.json"
    code = main(["supernet", "quality", "--config", str(config), "--model", str(supernet),
                 str(mos), "--data", str(tiny_data), "--scores", *score_files,
                 "--out", str(quality)])  # fmt: skip
    assert code == 0
    summaries = json.loads(quality.read_text())["supernets"]
    assert [(s["kind"], s["predictor"]) for s in summaries] == [
        ("hat", "Supernet (loss)"), ("layer-mos", "Layer-wise MoS (loss)"),
    ]  # fmt: skip
    summary = summaries[0]
    assert summary["architectures"] == 3 and -1.0 <= summary["kendall_neg_tfs_valid_loss"] <= 1.0
    assert summaries[1]["rows"] != summary["rows"]  # a different model, other scores
    # Two supernets of one kind would be two stored blocks of one name: refused.
    assert main(["supernet", "quality", "--config", str(config), "--model", str(supernet),
                 str(supernet), "--data", str(tiny_data), "--scores", *score_files,
                 "--out", str(tmp_path / "q2.json")]) == 2  # fmt: skip
    # BLEU after 6 updates may be 0 for all three: tau is then undefined, stored as null.
    assert summary["kendall_valid_bleu"] is None or -1 <= summary["kendall_valid_bleu"] <= 1
    assert len(summary["rows"]) == 3 and summary["seconds_per_arch"] > 0
    # A supernet scores a subnet only when told which one.
    assert main(["arch", "score", "--config", str(config), "--model", str(supernet),
                 "--data", str(tiny_data), "--out", str(tmp_path / "x.json")]) == 2  # fmt: skip


def test_cli_errors_are_one_line(tiny_data: Path, tmp_path: Path, capsys) -> None:
    config = _config(tmp_path)
    out = tmp_path / "m.pt"
    assert _arch_train(config, '{"encoder_embed_dim": 160}', tiny_data, out, tmp_path / "a") == 2
    assert "--arch" in capsys.readouterr().err
    wmt = get_space("hat-wmt").smallest().to_json()
    assert _arch_train(config, wmt, tiny_data, out, tmp_path / "a") == 2
    assert "space" in capsys.readouterr().err
    state = tmp_path / "state"
    arch = get_space("demo").smallest().to_json()
    assert _arch_train(config, arch, tiny_data, out, state) == 0
    other = _config(tmp_path, train={**TINY, "lr": 0.01})
    assert _arch_train(other, arch, tiny_data, out, state) == 2
    err = capsys.readouterr().err
    assert "settings.lr" in err and "--fresh" in err and "Traceback" not in err
    assert _arch_train(other, arch, tiny_data, out, state, "--fresh") == 0


@pytest.mark.parametrize("text", ["[1, 2]", "{not json"])
def test_config_json_errors(tiny_data: Path, tmp_path: Path, capsys, text: str) -> None:
    code = main(["supernet", "train", "--config-json", text, "--data", str(tiny_data),
                 "--out", str(tmp_path / "s.pt"), "--state-dir", str(tmp_path / "s")])  # fmt: skip
    assert code == 2 and "--config-json" in capsys.readouterr().err
