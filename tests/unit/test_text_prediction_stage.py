"""The text_prediction stage's own logic: which models it trains, how it names them, where its
corpora come from, and the Table 2 / Table 3 assembly."""

from __future__ import annotations

import pandas as pd
import pytest

from nasflow.core.errors import ConfigError, DataError
from nasflow.space.gpt import GPTArch
from nasflow.space.gpt_params import decoder_params
from nasflow.text_prediction.models import (
    candidate_specs,
    group_specs,
    inner_ratio_pairs,
    read_models,
)
from nasflow.text_prediction.results import table2, table3
from nasflow.text_prediction.sources import corpora, resolve_corpora
from nasflow.text_prediction.training import pick_for_finetuning

LTS = {"baseline": {"n_layer": 2, "d_model": 64, "d_inner": 128, "n_head": 2}}
CASE = """role,arch_id,n_layer,d_model,d_inner,n_head,decoder_params_m
baseline,aaa,2,64,128,2,0.1
candidate,bbb,3,64,192,2,0.2
candidate n_head=4,ccc,3,64,192,4,0.2
candidate,ddd,2,128,"256,512",4,0.3
"""


def test_candidates_are_named_as_the_case_study_names_them(tmp_path):
    path = tmp_path / "case_study.csv"
    path.write_text(CASE)
    specs = candidate_specs(path)
    assert [(s.name, s.role) for s in specs] == [
        ("C1", "candidate"),
        ("C1-h4", "candidate n_head=4"),
        ("C2", "candidate"),
    ]
    assert specs[2].arch == GPTArch(2, 128, (256, 512), (4, 4))
    assert group_specs("baseline", LTS)[0].arch == GPTArch.uniform(2, 64, 128, 2)


def test_group_errors_name_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="case study not found"):
        candidate_specs(tmp_path / "missing.csv")
    only_baseline = tmp_path / "case.csv"
    only_baseline.write_text(CASE.splitlines()[0] + "\n" + CASE.splitlines()[1] + "\n")
    with pytest.raises(DataError, match=r"lts\.selection\.margin"):
        group_specs("candidates", LTS, only_baseline)
    with pytest.raises(ConfigError, match="baseline, candidates"):
        group_specs("others", LTS)
    with pytest.raises(ConfigError, match=r"lts\.baseline"):
        group_specs("baseline", {"baseline": {"n_layer": 2}})
    bad = tmp_path / "bad.csv"
    bad.write_text(CASE.replace("candidate,ddd", "mystery,ddd"))
    with pytest.raises(DataError, match=r"bad.csv:5: unknown role 'mystery'"):
        candidate_specs(bad)


def test_inner_ratio_pairs_have_equal_parameters_and_the_two_ratios():
    baseline = GPTArch.uniform(4, 256, 1024, 8)
    specs = inner_ratio_pairs(baseline, [1.0, 4.0], [1.0, 0.5])
    assert [s.name for s in specs] == ["r1-s1", "r4-s1", "r1-s0.5", "r4-s0.5"]
    for low, high in zip(specs[0::2], specs[1::2], strict=True):
        assert low.arch.d_inner[0] / low.arch.d_model == 1.0
        assert high.arch.d_inner[0] / high.arch.d_model == 4.0
        assert low.arch.n_layer == high.arch.n_layer == 4
        gap = abs(decoder_params(low.arch) - decoder_params(high.arch))
        assert gap / decoder_params(high.arch) < 0.25
    assert specs[1].arch == baseline  # ratio 4 at the baseline's size is the baseline itself
    with pytest.raises(ConfigError, match=r"inner_ratio\.ratios"):
        inner_ratio_pairs(baseline, [2.5, 4.0], [1.0])


def test_corpora_resolve_from_the_config_then_the_mirror(tmp_path):
    ptb, m30k = tmp_path / "ptb", tmp_path / "multi30k"
    ptb.mkdir()
    m30k.mkdir()
    assert resolve_corpora({}, {}, str(tmp_path)) == (str(ptb), str(m30k))
    text = tmp_path / "own.txt"
    text.write_text("a b c\n")
    section = {"corpus": str(text), "finetune_corpus": str(text)}
    assert corpora(section, {}, "") == (text, text)
    with pytest.raises(ConfigError, match=r"text_prediction\.finetune_corpus: no corpus"):
        corpora({"corpus": str(text)}, {}, "")
    with pytest.raises(ConfigError, match=r"text_prediction.corpus: .*nowhere not found"):
        corpora({"corpus": str(tmp_path / "nowhere")}, {}, str(tmp_path))


def _model(name, role, word_ppl):
    return {
        "name": name,
        "role": role,
        "label": "L2 d64 f128 h2",
        "decoder_params": 100_000,
        "quality": {"word_ppl": word_ppl, "token_ppl": word_ppl / 2, "last_word_accuracy": 0.1},
    }


def test_the_candidate_with_the_lowest_perplexity_is_finetuned():
    models = [_model("C1", "candidate", 90.0), _model("C2", "candidate", 80.0)]
    models.append(_model("C2-h4", "candidate n_head=4", 80.0))
    assert pick_for_finetuning(models)["name"] == "C2"  # ties: the earlier (faster) one
    with pytest.raises(DataError):
        pick_for_finetuning([])


def test_tables_two_and_three():
    latency = pd.DataFrame(
        [
            ("pretrain", "baseline", 4.0, 2.0, 1.0),
            ("pretrain", "C1", 3.0, 1.0, 0.5),
            ("finetune", "baseline", 4.0, 2.0, 2.0),
            ("finetune", "C1", 3.0, 1.0, 1.5),
        ],
        columns=["phase", "name", "prompt_ms", "token_ms", "p95_ms_per_char"],
    )
    t2 = table2([_model("baseline", "baseline", 100.0), _model("C1", "candidate", 110.0)], latency)
    assert list(t2["model"]) == ["baseline", "C1"] and list(t2["token_ms"]) == [2.0, 1.0]
    assert t2["decoder_params_m"].tolist() == [0.1, 0.1]
    metrics = {"trigger_rate": 0.2, "asc": 10.0, "aec": 2.0, "saving_rate": 0.3}
    better = {"trigger_rate": 0.2, "asc": 11.0, "aec": 1.5, "saving_rate": 0.33}
    t3 = table3(metrics, better, latency, "baseline", "C1").set_index("metric")
    assert t3.loc["ASC (characters saved per suggestion)", "relative_change"] == pytest.approx(0.1)
    assert t3.loc["P95 latency per character (ms)", "candidate"] == 1.5
    assert t3.loc["P95 latency per character (ms)", "relative_change"] == pytest.approx(-0.25)


def test_models_file_errors_name_the_file(tmp_path):
    path = tmp_path / "models.json"
    path.write_text('{"models": []}')
    with pytest.raises(DataError, match="lists no model"):
        read_models(path)
    path.write_text("{")
    with pytest.raises(DataError, match=r"models\.json: not a models file"):
        read_models(path)


def test_the_data_command_refuses_bad_corpora_before_writing(tmp_path, capsys):
    from nasflow.cli import main

    good = tmp_path / "good.txt"
    good.write_text("".join(f"the cat sat on mat number {i}\n" for i in range(200)))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    glued = tmp_path / "glued.txt"
    glued.write_text("".join(f"oneverylongwordwithoutspaces{i}\n" for i in range(200)))
    config = '{"experiment": "t", "text_prediction": {"vocab_size": 300}}'
    for bad in (empty, glued):
        out = tmp_path / f"out-{bad.stem}"
        code = main(
            ["text-prediction", "data", "--config-json", config, "--pretrain-corpus", str(good),
             "--finetune-corpus", str(bad), "--out", str(out)]
        )  # fmt: skip
        assert code != 0
        assert str(bad) in capsys.readouterr().err
        assert not (out / "data.json").exists()
