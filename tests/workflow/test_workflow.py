"""The Snakemake workflow: lint, dry runs of configs and profiles, bad configs, tiny real runs."""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nasflow.report.render_check import check_report, find_chromium, results_content

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.workflow


def snakemake(*args: str, cwd: Path, mirror: Path | None = None, timeout: int = 600):
    """Run snakemake from this virtualenv with the repository's Snakefile in directory `cwd`."""
    env = {k: v for k, v in os.environ.items() if k != "NASFLOW_MIRROR"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if mirror is not None:
        env["NASFLOW_MIRROR"] = str(mirror)
    cmd = [
        str(BIN / "snakemake"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(cwd),
        *args,
    ]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def write_config(path: Path, **data_overrides) -> Path:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["experiment"] = "t"
    config["data"].update(data_overrides)
    path.write_text(yaml.safe_dump(config))
    return path


def test_lint_is_clean(tmp_path):
    result = snakemake("--lint", "--configfile", str(REPO / "config" / "config.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_dry_run_without_mirror_skips_paper_tables(tmp_path):
    result = snakemake("-n", "--configfile", str(REPO / "config" / "config.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "prepare_data" in result.stdout and "table1_baselines" not in result.stdout
    assert "skipping the paper tables" in result.stderr


def dry_run_jobs(stdout: str) -> dict[str, list[str]]:
    """Rule name -> the `resources:` lines of its jobs in a dry run's output."""
    jobs: dict[str, list[str]] = {}
    rule = None
    for line in stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
            jobs.setdefault(rule, [])
        elif rule and line.strip().startswith("resources:"):
            jobs[rule].append(line.strip())
    return jobs


GPU_RULES = {"train_supernet", "train_arch", "score_arch", "run_search", "train_final"}


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "config").glob("*.yaml")))
def test_dry_run_of_every_shipped_config_with_the_slurm_profile(tmp_path, config, mirror):
    lts = config.startswith("lts_")
    result = snakemake(
        "-n", *(("lts",) if lts else ()), "--workflow-profile", str(REPO / "profiles" / "slurm"),
        "--configfile", str(REPO / "config" / config), cwd=tmp_path, mirror=mirror,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = dry_run_jobs(result.stdout)
    assert jobs, result.stdout[-2000:]
    for rule, resources in jobs.items():
        for line in resources:
            assert "slurm_account=MY_ACCOUNT" in line, (rule, line)
            if rule in GPU_RULES:  # device auto: one GPU from the GPU partition
                assert "gpu=1" in line and "slurm_partition=MY_GPU_PARTITION" in line, line
    if not lts:
        assert set(jobs) >= GPU_RULES
        assert "gpu=1" not in jobs["prepare_data"][0]
        assert "slurm_partition=MY_CPU_PARTITION" in jobs["prepare_data"][0]
    assert not (tmp_path / "results").exists()


STAGES = {
    "data": ({"prepare_data"}, {"train_supernet"}),
    "supernet": ({"prepare_data", "train_supernet"}, {"train_arch", "latency_dataset"}),
    "latency": ({"latency_dataset", "latency_predictor"}, {"train_supernet", "train_arch"}),
    "tfs": ({"train_arch", "score_arch", "supernet_quality", "tfs_eval"}, {"llm_pp_predict"}),
    "zero_cost": ({"zero_cost_scores", "tfs_eval"}, {"llm_pp_predict", "run_search"}),
    "llm_pp": ({"llm_pp_predict", "llm_pp_evaluate", "table1_baselines"}, {"run_search"}),
    "distill": ({"distill_dataset", "distill_train"}, {"run_search", "latency_dataset"}),
    "search": ({"run_search", "latency_predictor", "distill_train"}, {"train_final"}),
    "final": ({"train_final", "score_final", "measure_final"}, {"search_tables", "lts_search"}),
    "tables": (
        {"search_tables", "llm_pp_evaluate", "table1_baselines", "table11", "llm_pp_robustness"},
        {"lts_search"},
    ),
    "lts": ({"lts_text", "lts_search", "lts_case_study", "lts_proxy_check"}, {"prepare_data"}),
    "text_prediction": (
        {
            "lts_case_study",
            "text_prediction_data",
            "text_prediction_pretrain",
            "text_prediction_finetune",
            "text_prediction_suggest",
            "text_prediction_latency",
            "text_prediction_tables",
        },
        {"prepare_data", "lts_proxy_check", "text_prediction_inner_ratio"},
    ),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_targets_build_their_stage_and_no_more(tmp_path, stage, mirror):
    result = snakemake(
        "-n", stage, "--configfile", str(REPO / "config" / "config.yaml"), cwd=tmp_path,
        mirror=mirror,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rules = set(dry_run_jobs(result.stdout))
    needed, excluded = STAGES[stage]
    assert needed <= rules, needed - rules
    assert not excluded & rules, excluded & rules


def test_a_calibrated_search_and_a_mos_search_plan_their_inputs(tmp_path):
    """`supernet-calibrated` gets the TFS-Eval set, the distillation split seed and its number of
    demonstrations; a method naming `supernet: neuron-mos` gets (and trains) that supernet."""
    data = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    data["search"]["methods"]["cal"] = {"iterations": 8, "default": "supernet-calibrated"}
    data["search"]["run"] = ["cal", "neuron-mos"]
    data["supernet"]["compare"] = []
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    result = snakemake("-n", "-p", "search", "--configfile", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    searches = [line for line in result.stdout.splitlines() if "nasflow search run" in line]
    (cal,) = [line for line in searches if "--method cal" in line]
    assert "--calibration results/demo/tfs_eval --calibration-seed 123" in cal
    assert "--calibration-demonstrations 2" in cal and "supernet/hat/model.pt" in cal
    (mos,) = [line for line in searches if "--method neuron-mos" in line]
    assert "supernet/neuron-mos/model.pt" in mos and "--calibration" not in mos
    trained = [line for line in result.stdout.splitlines() if "nasflow supernet train" in line]
    assert sorted(k for k in ("hat", "layer-mos", "neuron-mos") for t in trained
                  if f"supernet/{k}/model.pt" in t) == ["hat", "neuron-mos"]  # fmt: skip


def test_a_fast_search_passes_its_protocol_and_check_to_the_job(tmp_path):
    """`search.protocol: fast` and `search.valid_subset` reach `nasflow search run` (its
    --config-json); the outputs are the same files."""
    data = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    data["search"]["protocol"] = "fast"
    data["search"]["valid_subset"] = {"sample": 10, "fractions": [0.25]}
    data["search"]["run"] = ["hat"]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    result = snakemake("-n", "-p", "search", "--configfile", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    searches = [line for line in result.stdout.splitlines() if "nasflow search run" in line]
    assert searches and all('"protocol": "fast"' in line for line in searches)
    check = '"valid_subset": {"fractions": [0.25], "min_kendall": 0.9, "sample": 10, "seed": 0}'
    assert all(check in line for line in searches)


def test_stages_needing_a_tfs_set_say_so(tmp_path):
    config = tmp_path / "one.yaml"
    data = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    data["tfs"]["num_archs"] = 1
    config.write_text(yaml.safe_dump(data))
    result = snakemake("-n", "search", "--configfile", str(config), cwd=tmp_path)
    assert result.returncode != 0
    assert "target search needs a TFS-Eval set" in result.stdout + result.stderr
    assert snakemake("-n", "supernet", "--configfile", str(config), cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["seed=abc"], "config key seed: 'abc' is not of type 'integer'"),
        (["spaces=demo"], "unknown config key spaces"),
        (["space=hat-huge"], "config key space: unknown search space 'hat-huge'; known: hat-wmt"),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, override, message):
    result = snakemake(
        "--cores", "1", "--configfile", str(REPO / "config" / "config.yaml"), "--config", *override,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


def test_more_demonstrations_than_tfs_archs_fails_before_any_job(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["llm"]["demonstrations"] = [5]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("--cores", "1", "--configfile", str(path), cwd=tmp_path)
    assert result.returncode != 0
    message = "llm.demonstrations asks for 5 demonstrations, but the TFS-Eval set has 2"
    assert message in result.stderr and "tfs.num_archs 6" in result.stderr
    assert not (tmp_path / "results").exists()


def test_config_errors_only_a_job_would_find_stop_the_run_first(tmp_path):
    """Duplicate keys (Snakemake itself keeps the last) and settings a job's own class would
    reject fail before any job, naming the file and key."""
    text = (REPO / "config" / "config.yaml").read_text()
    duplicate = tmp_path / "dup.yaml"
    duplicate.write_text(text + "seed: 2\n")
    result = snakemake("--cores", "1", "--configfile", str(duplicate), cwd=tmp_path)
    assert result.returncode != 0 and "duplicate key 'seed'" in result.stderr
    config = yaml.safe_load(text)
    config["search"]["parents"] = 20
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake("--cores", "1", "--configfile", str(bad), cwd=tmp_path)
    assert result.returncode != 0 and "search.population (12) must equal" in result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"suggest": {"trigger": 1.5}}, "config key text_prediction.suggest.trigger"),
        ({"suggest": {"stops": []}}, "config key text_prediction.suggest.stops"),
        ({"pretrain": {"warmup": 900}}, "text_prediction.pretrain.warmup (900) exceeds"),
        ({"seq_len": 32}, "text_prediction.seq_len (32) is shorter than"),
    ],
)
def test_bad_text_prediction_settings_fail_before_any_job(tmp_path, section, message):
    config = yaml.safe_load((REPO / "config" / "lts_gpt2.yaml").read_text())
    config["text_prediction"] = {**config["text_prediction"], **section}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("--cores", "1", "text_prediction", "--configfile", str(path), cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


def test_bad_config_file_fails_before_any_job(tmp_path):
    config = tmp_path / "bad.yaml"
    write_config(config, vocab_size="lots")
    result = snakemake("--cores", "1", "--configfile", str(config), cwd=tmp_path)
    assert result.returncode != 0
    assert "data.vocab_size" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


FILE_SPACE = {
    "name": "tiny-file", "description": "a space from a file", "embed": [64, 48],
    "encoder_layers": [2], "decoder_layers": [2, 1], "ffn": [128, 96], "heads": [4, 2],
    "arbitrary_ende_attn": [-1, 1], "qkv_dim": 64,
}  # fmt: skip


def tiny_config(tmp_path: Path) -> Path:
    """A tiny synthetic corpus and a config that runs the whole chain on it in a few minutes."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8)))
             for _ in range(300)]  # fmt: skip
    for split, n in (("train", 400), ("val", 20), ("test", 20)):
        for lang in ("en", "de"):
            lines = [
                " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(n)
            ]
            (corpus / f"{split}.{lang}").write_text("\n".join(lines) + "\n")
    config = write_config(
        tmp_path / "tiny.yaml", corpus="custom", local_dir=str(corpus), vocab_size=200,
        splits={"train": "train", "valid": "val", "test": "test"},
    )  # fmt: skip
    with open(config) as handle:
        data = yaml.safe_load(handle)
    data["paper"]["enabled"] = False
    # The MT space comes from a file (relative to the working directory), as a user's would.
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(FILE_SPACE, sort_keys=False))
    data["space"] = "space.yaml"
    tiny = {"max_updates": 4, "warmup_updates": 1, "max_tokens": 512, "valid_interval_updates": 2,
            "save_interval_updates": 2, "log_interval_updates": 1, "device": "cpu"}  # fmt: skip
    # One Mixture-of-Supernets beside the HAT supernet, scored in supernet_quality.json.
    data["supernet"] = {**tiny, "sampling": "sandwich", "compare": ["neuron-mos"],
                        "router_hidden": 8}  # fmt: skip
    data["train"] = tiny
    data["tfs"] = {"num_archs": 3, "example_pool": 50}
    data["evaluate"] = {"beam": 2, "max_len_a": 1.0, "max_len_b": 3, "valid_sentences": 10}
    data["latency"] = {"dataset_size": 12, "runs": 2, "warmup": 1, "length": 6,
                       "predictor": {"steps": 200, "hidden_dim": 32}}  # fmt: skip
    data["llm"]["demonstrations"] = [1]  # 3 architectures: 1 train + 2 test per split seed
    data["distill"] = {"num_archs": 20, "demonstrations": 1, "mlp": {"steps": 50}}
    hsnas = {"iterations": 2, "default": "supernet",
             "segments": [{"predictor": "distill", "start": 1, "end": 1}]}  # fmt: skip
    data["search"] = {"population": 4, "parents": 2, "mutations": 1, "crossovers": 1,
                      "constraints": {"small": {"params_m": 10}},
                      "methods": {"hat": {"iterations": 2, "default": "supernet"},
                                  "hsnas": hsnas},
                      "final_train": {"max_updates": 6}}  # fmt: skip
    data["lts"] = {"measure": {"prompt_tokens": 8, "new_tokens": 3, "warmup": 1, "runs": 2,
                               "vocab_size": 400, "n_positions": 64},
                   "text": {"corpus": str(corpus / "train.en"), "vocab_size": 300},
                   "search": {"population": 4, "parents": 2, "mutations": 1, "crossovers": 1,
                              "iterations": 2},
                   "cache": "resources/lts.sqlite",
                   "baseline": {"n_layer": 2, "d_model": 64, "d_inner": 128, "n_head": 2},
                   "selection": {"margin": 100.0, "limit": 1, "heads": [4]}}  # fmt: skip
    # The text-prediction case study on the same synthetic text (single files: PTB-style
    # held-out = the last 5% of lines; the sentence-completion file is split 90/5/5).
    train = {"batch_tokens": 64, "warmup": 1, "eval_every": 2, "save_every": 2}
    data["text_prediction"] = {
        "corpus": str(corpus / "train.en"), "finetune_corpus": str(corpus / "train.de"),
        "vocab_size": 320, "seq_len": 16, "pretrain": {**train, "steps": 4},
        "finetune": {**train, "steps": 2}, "quality": {"max_sentences": 10},
        "suggest": {"max_sentences": 6, "max_tokens": 3, "tolerance": 0.5},
        "inner_ratio": {"enabled": True, "sizes": [1.0]},
    }  # fmt: skip
    config.write_text(yaml.safe_dump(data))
    return config


def test_tiny_real_run_prepares_a_custom_corpus(tmp_path):
    config = tiny_config(tmp_path)
    result = snakemake("--cores", "2", "--configfile", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "results" / "t"
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert manifest["vocab_size"] == 200
    for role in ("train", "valid", "test"):
        assert (out / "data" / f"{role}.npz").is_file()
    assert (tmp_path / "logs" / "t" / "prepare_data.log").is_file()
    for kind in ("hat", "neuron-mos"):
        assert (out / "supernet" / kind / "model.pt").is_file()
        curve = (out / "supernet" / kind / "curve.csv").read_text()
        assert curve.count("\n") == 5  # header + 4 updates
    scores = sorted(out.glob("tfs/*/score.json"))
    assert len(scores) == 3
    score = json.loads(scores[0].read_text())
    assert set(score) >= {"arch", "valid", "test", "environment"}
    assert "nrefs:1" in score["test"]["bleu_signature"]
    quality = json.loads((out / "tfs" / "supernet_quality.json").read_text())["supernets"]
    assert [(q["kind"], q["predictor"], q["architectures"]) for q in quality] == [
        ("hat", "Supernet (loss)", 3), ("neuron-mos", "Neuron-wise MoS (loss)", 3),
    ]  # fmt: skip
    # The experiment's own TFS-Eval set (1 train + 2 test archs per seed) and its Table 1.
    info = json.loads((out / "tfs_eval" / "tfs_eval.json").read_text())
    assert info["space"] == "tiny-file" and info["tasks"]["t"]["vocab_size"] == 200
    assert info["built_from"]["train_size"] == 1 and info["built_from"]["test_size"] == 2
    table1 = (out / "tables" / "table1_llm_pp.csv").read_text()
    assert "Supernet (loss),t," in table1 and "#FLOPs,t," in table1
    # The MoS supernet's stored block, calibrated rows (BLEU-scale: an MAE) and zero-cost rows.
    rows = {line.split(",")[0]: line.split(",") for line in table1.splitlines()[1:]}
    assert "Neuron-wise MoS (loss)" in rows
    for name in ("Supernet (loss) + calibration", "Neuron-wise MoS (loss) + calibration"):
        assert rows[name][2] != "", rows[name]  # MAE
    for name in ("grad-norm", "snip", "synflow"):  # rank-only: no MAE; over the 3 split seeds
        # (Kendall is empty here: after 4 updates every from-scratch BLEU may tie at 0)
        assert rows[name][2] == "" and rows[name][6] == "3", rows[name]
    zero_cost = (out.parent / "t" / "zero_cost" / "scores.csv").read_text().splitlines()
    assert zero_cost[0].startswith("task,arch_id,grad-norm,snip,synflow") and len(zero_cost) == 4
    assert "LLM-PP offline stand-in (no LLM) k=1,t," in table1
    usage = json.loads((out / "llm_pp" / "offline" / "full-k1" / "usage.json").read_text())
    assert usage["architectures"] == 6 and usage["failed"] == 0  # 2 test archs x 3 seeds
    assert (tmp_path / "state" / "t" / "supernet" / "hat" / "state.pt").is_file()
    latency = out / "latency" / "cpu"
    assert (latency / "dataset.csv").read_text().count("\n") == 13  # header + 12 archs
    evaluation = json.loads((latency / "predictor" / "eval.json").read_text())
    assert evaluation["test"]["n"] >= 1 and (latency / "predictor" / "model.pt").is_file()
    # The search chain: distilled MLPs per split seed, HAT and HS-NAS, final models, tables.
    assert sorted(p.parent.name for p in out.glob("distill/offline/seed*/model.pt")) == [
        "seed123", "seed456", "seed789",
    ]  # fmt: skip
    history = (out / "search" / "hsnas" / "small" / "seed1" / "history.csv").read_text()
    assert [line.split(",")[1] for line in history.splitlines()[1:]] == ["distill", "supernet"]
    results = (out / "tables" / "search" / "results.csv").read_text().splitlines()
    assert len(results) == 3 and results[0].startswith("method,constraint,seed,arch_id")
    assert "LLM-Distill-PP offline stand-in (no LLM),t," in table1
    assert (out / "tables" / "search" / "convergence.png").stat().st_size > 5_000
    final_curve = out / "search" / "hat" / "small" / "seed1" / "final" / "curve.csv"
    assert final_curve.read_text().count("\n") == 7  # search.final_train: 6 updates, not 4
    # The winner is of the file's space, and its final model scored and timed.
    seed = out / "search" / "hat" / "small" / "seed1"
    arch = json.loads((seed / "best_arch.json").read_text())
    assert arch["space"] == "tiny-file" and arch["encoder_layer_num"] == 2
    assert set(arch["encoder_ffn_embed_dim"] + arch["decoder_ffn_embed_dim"]) <= {128, 96}
    for name in ("score.json", "latency.json"):
        assert json.loads((seed / "final" / name).read_text())["arch"] == arch
    # The LTS chain (no PTB here, so no proxy check): frontier and case study.
    assert (out / "lts" / "search" / "frontier.csv").read_text().count("\n") >= 2
    case = (out / "lts" / "case_study.csv").read_text().splitlines()
    assert case[1].startswith("baseline,") and len(case) >= 3
    # The text-prediction target: both groups pretrained (the candidates from the case study),
    # both finetuned, suggestions tuned on dev, Tables 2 and 3.
    tp = out / "text_prediction"
    candidates = json.loads((tp / "pretrain" / "candidates" / "models.json").read_text())
    assert candidates["models"][0]["name"] == "C1"
    assert len(candidates["models"]) == len(case) - 2  # case-study rows but header and baseline
    table2 = (tp / "table2.csv").read_text().splitlines()
    assert table2[1].startswith("baseline,baseline,") and len(table2) == len(case)
    table3 = (tp / "table3.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in table3[1:]][:3] == [
        "trigger rate", "ASC (characters saved per suggestion)",
        "AEC (extra characters per suggestion)",
    ]  # fmt: skip
    tuning = json.loads((tp / "tuning.json").read_text())
    gap = abs(tuning["chosen"]["trigger_rate"] - tuning["target"]["trigger_rate"])
    assert gap <= 0.5 and tuning["names"]["baseline"] == "baseline"
    assert (tp / "finetune" / "baseline" / "curve.csv").read_text().count("\n") >= 2
    assert "Table 3" in (tp / "text_prediction.md").read_text()
    pairs = (tp / "inner_ratio" / "inner_ratio.csv").read_text().splitlines()
    assert len(pairs) == 3 and pairs[1].startswith("1.0,1.0,r1-s1,")
    rerun = snakemake("--cores", "2", "--configfile", str(config), cwd=tmp_path)
    assert rerun.returncode == 0 and "Nothing to be done" in rerun.stdout + rerun.stderr
    # Deleting artifacts reruns only the jobs that write them (and nothing upstream).
    (out / "tables" / "search" / "table3.md").unlink()
    (out / "tables" / "table1_llm_pp.md").unlink()
    dry = snakemake("-n", "--cores", "2", "--configfile", str(config), cwd=tmp_path)
    expected = {"search_tables", "llm_pp_evaluate", "results_page", "all"}
    assert set(dry_run_jobs(dry.stdout)) == expected, dry.stdout
    # An intermediate artifact too: its job, then what reads it (by modification time).
    (out / "search" / "hat" / "small" / "seed1" / "final" / "model.pt").unlink()
    dry = snakemake("-n", "--cores", "2", "--configfile", str(config), cwd=tmp_path)
    jobs = dry_run_jobs(dry.stdout)
    assert set(jobs) == {"train_final", "score_final", "measure_final", "search_tables",
                         "llm_pp_evaluate", "results_page", "all"}, dry.stdout  # fmt: skip
    assert len(jobs["train_final"]) == 1
    assert "method=hat," in dry.stdout and "method=hsnas," not in dry.stdout
    # The results page: both searches' winners, their scored architectures, every table.
    page = (out / "report" / "results.html").read_text()
    rows, plots = results_content(page)
    assert rows == 2 and len(plots) >= 4
    assert "Search results (Tables 3/4)" in page and "LTS case study" in page
    # The report: every captioned result, self-contained, rendered in headless Chromium; its
    # landing page is the results page.
    again = snakemake("--cores", "2", "--configfile", str(config), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    report = tmp_path / "report.html"
    built = snakemake("--report", str(report), "--configfile", str(config), cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    html = report.read_text()
    for caption in ("0 Results", "Predictor quality (Table 1)", "Latency", "LTS", "What won"):
        assert caption in html
    if find_chromium() is not None:
        shot = check_report(report, tmp_path / "report.png", expect=["0 Results"], results=True)
        assert shot.ink_fraction > 0.01 and shot.winner_rows == 2


def job_config_json(stdout: str, command: str) -> dict:
    """The `--config-json` of the first `command` job a dry run with `-p` prints."""
    for line in stdout.splitlines():
        if line.startswith(f"Shell command: {command} "):
            words = shlex.split(line.removeprefix("Shell command: "))
            return json.loads(words[words.index("--config-json") + 1])
    raise AssertionError(f"no {command} job in the dry run")


def test_a_space_from_a_file_reaches_every_job(tmp_path):
    """`space:` names a YAML file (the tiny config's, relative to the working directory): the
    jobs receive its definition (the tiny real run searches it end to end)."""
    config = tiny_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data.update(chains=["hsnas"])
    data["search"]["methods"] = {"hat": data["search"]["methods"]["hat"]}
    data["search"]["run"] = ["hat"]
    config.write_text(yaml.safe_dump(data))
    dry = snakemake("-n", "-p", "final", "--configfile", str(config), cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert set(dry_run_jobs(dry.stdout)) == {
        "prepare_data", "train_supernet", "latency_dataset", "latency_predictor", "run_search",
        "train_final", "score_final", "measure_final", "final",
    }  # fmt: skip
    space = job_config_json(dry.stdout, "nasflow search run")["space"]
    assert space["name"] == "tiny-file" and space["ffn"] == [128, 96] and space["qkv_dim"] == 64


def test_a_killed_run_restarts_without_redoing_finished_jobs(tmp_path):
    """Ctrl-C half-way (after the LLM labelling of one split seed), then a plain rerun."""
    config = tiny_config(tmp_path)
    labelled = tmp_path / "results" / "t" / "distill" / "offline" / "seed123" / "dataset.csv"
    env = {k: v for k, v in os.environ.items() if k != "NASFLOW_MIRROR"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    cmd = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(tmp_path), "--cores", "1", "--configfile", str(config)]  # fmt: skip
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as log:
        # SIGINT back to its default: a shell's background job (e.g. CI started with `&`)
        # ignores it, and Python then installs no KeyboardInterrupt handler.
        first = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=log, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        deadline = time.monotonic() + 600
        # Interrupt as soon as Snakemake reports the first labelling job finished.
        while (
            "(Rule: distill_dataset)" not in first_log.read_text()
            and first.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        assert first.poll() is None, "the run ended before it could be interrupted"
        os.killpg(first.pid, signal.SIGINT)  # as Ctrl-C in a terminal
        first.wait(timeout=120)
    assert first.returncode != 0
    labelled = next(
        path for path in labelled.parent.parent.glob("seed*/dataset.csv")
        if path.with_name("usage.json").exists()
    )  # fmt: skip
    done = [tmp_path / "results" / "t" / "data" / "manifest.json", labelled]
    stamps = {path: path.stat().st_mtime_ns for path in done}
    assert not (tmp_path / "results" / "t" / "tables" / "search" / "results.csv").exists()
    rerun = snakemake("--cores", "2", "--configfile", str(config), cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rerun_rules = set(dry_run_jobs(rerun.stdout + rerun.stderr))
    assert "prepare_data" not in rerun_rules and "search_tables" in rerun_rules
    assert {path: path.stat().st_mtime_ns for path in done} == stamps  # not redone
    usage = json.loads(labelled.with_name("usage.json").read_text())
    assert usage["architectures"] == 20  # the labels of the first run, kept


def test_tiny_real_run_builds_the_paper_table(tmp_path, mirror):
    targets = [
        "results/paper/tables/table1_baselines.csv",
        "results/paper/tables/table1_baselines.md",
        "results/paper/plots/tfs_vs_predicted.png",
        "results/paper/tables/table1_llm_pp.csv",
    ]
    result = snakemake(
        *targets, "--cores", "1", "--configfile", str(REPO / "config" / "config.yaml"),
        cwd=tmp_path, mirror=mirror,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    csv = (tmp_path / targets[0]).read_text().splitlines()
    assert csv[0] == "predictor,task,mae,mae_std,kendall,kendall_std,n_seeds"
    assert any(line.startswith("HAT,Average,") for line in csv)
    assert (tmp_path / targets[2]).stat().st_size > 10_000
    llm = (tmp_path / targets[3]).read_text()
    assert "LLM-PP offline stand-in (no LLM),Average," in llm and "HAT,Average," in llm
    usage = json.loads((tmp_path / "results/paper/llm_pp/offline/full-k10/usage.json").read_text())
    assert usage["architectures"] == 180 and usage["failed"] == 0
    assert (tmp_path / "resources" / "llm_cache.sqlite").is_file()


def test_api_key_is_required_up_front_and_never_printed(tmp_path, mirror, monkeypatch):
    extra = tmp_path / "llm.yaml"
    setup = {"name": "gpt4", "provider": "openai", "model": "gpt-4", "api_key_env": "NASFLOW_KEY_T"}
    offline = {"name": "offline", "provider": "offline"}  # distill.llm's default
    extra.write_text(yaml.safe_dump({"llm": {"predictors": [offline, setup]}}))
    base = ("-n", "--configfile", str(REPO / "config" / "config.yaml"), str(extra))
    monkeypatch.delenv("NASFLOW_KEY_T", raising=False)
    missing = snakemake(*base, cwd=tmp_path, mirror=mirror)
    assert missing.returncode != 0 and "NASFLOW_KEY_T" in missing.stdout + missing.stderr
    # A remote https base URL needs the key too; a local server may run without one.
    remote = {**setup, "base_url": "https://my-resource.openai.azure.com/openai/v1/"}
    local = {**setup, "name": "vllm", "base_url": "http://localhost:8000/v1"}
    for setups, needed in (([offline, remote], True), ([offline, local], False)):
        other = tmp_path / "base_url.yaml"
        other.write_text(yaml.safe_dump({"llm": {"predictors": setups}}))
        args = ("-n", "--configfile", str(REPO / "config" / "config.yaml"), str(other))
        run = snakemake(*args, cwd=tmp_path, mirror=mirror)
        said = run.stdout + run.stderr
        if needed:
            assert run.returncode != 0 and "NASFLOW_KEY_T" in said, said[-2000:]
        else:
            assert run.returncode == 0, said[-2000:]
    monkeypatch.setenv("NASFLOW_KEY_T", "sk-secret-xyz")
    result = snakemake(*base, "--printshellcmds", cwd=tmp_path, mirror=mirror)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    # The variable's name reaches the job (in its --config-json), never its value.
    assert '"api_key_env": "NASFLOW_KEY_T"' in output and "sk-secret-xyz" not in output
