# Shared helpers: paths and targets. The config was resolved and validated in the Snakefile.

import hashlib
import json
import os
import re
import sys
from pathlib import Path

from nasflow.config.resolve import final_train_settings, resolve_tfs_eval_dir, tfs_train_size
from nasflow.lts.text import resolve_text_corpus
from nasflow.space.hat import get_space, tfs_sample

EXP = config["experiment"]
HSNAS = "hsnas" in config["chains"]
MIRROR = os.environ.get("NASFLOW_MIRROR")
TFS_EVAL_DIR = resolve_tfs_eval_dir(config, MIRROR)
# TFS-Eval architectures: drawn from the space with the experiment seed, known at parse time.
TFS_ARCHS = (
    {
        arch.id: arch
        for arch in tfs_sample(
            get_space(config["space"]), config["tfs"]["num_archs"], config["seed"]
        )
    }
    if HSNAS
    else {}
)


wildcard_constraints:
    arch_id=r"[0-9a-f]{12}",
    target=r"[A-Za-z0-9_.-]+",
    llm=r"[A-Za-z0-9_.-]+",
    scope=f"paper|{re.escape(EXP)}",
    method=r"[A-Za-z0-9_.-]+",
    constraint=r"[A-Za-z0-9_.-]+",
    seed=r"[0-9]+",
    split=r"[0-9]+",
    variant=r"[a-z_]+",
    k=r"[0-9]+",


def state_key(text):
    """Short hash of a job's settings: its resumable state lives in a folder of its own, so a
    run with changed settings starts afresh while a killed run with the same ones resumes.
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def run_config(*sections):
    """The config keys a training/scoring job depends on, as JSON for `--config-json`.

    Passing only these sections (not the whole config) keeps unrelated edits, e.g. to the paper
    tables, from re-triggering expensive training jobs.
    """
    keys = ("experiment", "seed", "space", "threads", "model", *sections)
    settings = {key: config[key] for key in keys if key in config}
    # How the corpus is fetched does not change what a job computes.
    if "data" in settings:
        settings["data"] = {k: v for k, v in settings["data"].items() if k != "fetch"}
    return json.dumps(settings, sort_keys=True)


def final_train_config():
    """run_config("train") for the searches' winners: the train section with
    search.final_train's overrides."""
    keys = ("experiment", "seed", "space", "threads", "model")
    settings = {key: config[key] for key in keys}
    settings["train"] = final_train_settings(config)
    return json.dumps(settings, sort_keys=True)


def local_cuda_available():
    """Whether this machine has a CUDA device (asked once)."""
    global _LOCAL_CUDA
    if _LOCAL_CUDA is None:
        import torch

        _LOCAL_CUDA = torch.cuda.is_available()
    return _LOCAL_CUDA


_LOCAL_CUDA = None


def uses_gpu(section):
    """The `gpu` resource of a section's jobs, decided when the DAG is built: 0 for device cpu;
    for auto, 0 when jobs run on this machine (the local executor) and it has no CUDA, so that
    CPU jobs run side by side; else 1, which asks SLURM for a GPU (and which a dry run shows).
    """

    def gpu(wildcards):
        device = config[section]["device"]
        if device == "cpu":
            return 0
        plugin = workflow.executor_plugin
        if device == "auto" and plugin is not None and plugin.name == "local":
            return int(local_cuda_available())
        return 1

    return gpu


def measurement_cores(threads):
    """Cores a measurement job reserves, decided when the DAG is built: all of them when jobs
    run on this machine (nothing may run beside a measurement), else the measurement's own
    threads (a cluster job has its own allocation). The measurement itself always uses
    `threads`."""
    plugin = workflow.executor_plugin
    if plugin is not None and plugin.name == "local" and workflow._cores:
        return max(threads, workflow._cores)
    return threads


def measure_threads(target):
    """Cores a latency job of `target` reserves (see measurement_cores)."""
    return measurement_cores(config["latency"]["targets"][target]["threads"])


def target_uses_gpu(target):
    """1 when the latency target is a GPU."""
    return int(config["latency"]["targets"][target]["device"] == "cuda")


LLM_PREDICTORS = {entry["name"]: entry for entry in config["llm"]["predictors"]}
# Keys the openai setups need (llm.smk's envvars: checked before any job). Only a local server
# (base_url on localhost/127.0.0.1/::1, or plain http:// to a private host) may run without one;
# no base_url (api.openai.com) or a remote https:// one needs its api_key_env set.
from nasflow.llm.keys import required_key_envs

LLM_API_KEY_ENVS = required_key_envs(LLM_PREDICTORS.values())


def shell_args(options):
    """`[flag, value, ...]` of the options whose value is set, as strings. Rules write such a
    list as `{params.x:q}`, which quotes each word for the shell: config values never reach a
    shell command unquoted."""
    return [
        str(word)
        for flag, value in options.items()
        if value is not None
        for word in (flag, value)
    ]


def llm_predict_args(name, samples=None):
    """`nasflow llm-pp predict` options (a list, see `shell_args`) of one `llm.predictors` entry
    and the shared settings; `samples` replaces `llm.samples`."""
    entry, llm = LLM_PREDICTORS[name], config["llm"]
    options = {
        "--provider": entry["provider"],
        "--model": entry.get("model"),
        "--base-url": entry.get("base_url"),
        "--api-key-env": entry.get("api_key_env"),
        "--temperature": entry.get("temperature"),
        "--max-tokens": entry.get("max_tokens"),
        "--price-prompt": entry.get("price_prompt"),
        "--price-completion": entry.get("price_completion"),
        "--task-examples": llm["task_examples"],
        "--template": llm["template"],
        "--samples": llm["samples"] if samples is None else samples,
        "--aggregate": llm["aggregate"],
        "--parse-retries": llm["parse_retries"],
        "--concurrency": llm["concurrency"],
        "--requests-per-minute": llm["requests_per_minute"],
        "--timeout": llm["timeout"],
        "--cache": llm["cache"],
    }
    return shell_args(options)


def llm_scope_tfs_eval(wildcards):
    """The TFS-Eval folder of a scope: the released one, or the one built from our runs."""
    if wildcards.scope == "paper":
        return str(TFS_EVAL_DIR)
    return f"results/{EXP}/tfs_eval"


def llm_scope_tasks(scope):
    """Tasks LLM-PP is evaluated on in a scope."""
    return config["paper"]["tasks"] if scope == "paper" else [EXP]


def llm_scope_demonstrations(scope):
    """Numbers of demonstrations in a scope: `paper.demonstrations` on the released sets,
    `llm.demonstrations` on the experiment's own (validated against its train split)."""
    section = "paper" if scope == "paper" else "llm"
    return config[section]["demonstrations"]


def llm_pp_files(scope):
    """Prediction and usage files of every configured setup, variant and number of
    demonstrations."""
    return [
        path
        for name in LLM_PREDICTORS
        for variant in config["llm"]["variants"]
        for k in llm_scope_demonstrations(scope)
        for path in outputs_of(
            rules.llm_pp_predict, scope=scope, llm=name, variant=variant, k=k
        )
    ]


def llm_pp_predictions(scope):
    """Prediction files of every configured setup, variant and number of demonstrations."""
    return [
        f"results/{scope}/llm_pp/{name}/{variant}-k{k}/predictions.jsonl"
        for name in LLM_PREDICTORS
        for variant in config["llm"]["variants"]
        for k in llm_scope_demonstrations(scope)
    ]


def llm_task_example_corpora(scope):
    """Training corpora named for the scope's released tasks (`llm.task_example_corpora`)."""
    corpora = config["llm"].get("task_example_corpora") or {}
    return {task: corpora[task] for task in llm_scope_tasks(scope) if task in corpora}


def llm_task_example_args(scope):
    """`--examples-train TASK=DIR ...` for the scope's named training corpora (a list, see
    `shell_args`)."""
    corpora = llm_task_example_corpora(scope)
    if not corpora:
        return []
    return [
        "--examples-train",
        *(f"{task}={folder}" for task, folder in corpora.items()),
    ]


def llm_task_example_files(wildcards):
    """Files the scope's task examples are read from, so that a new or changed source reruns
    the predictions (prompts change with it): each named training corpus (made first when a
    rule writes it, e.g. fetch_corpus), else the mirror's development set where present.
    """
    from nasflow.llm.examples import DEV_FALLBACK, TASK_LANGUAGES, train_corpus_files

    corpora = llm_task_example_corpora(wildcards.scope)
    files = []
    for task in llm_scope_tasks(wildcards.scope):
        if task in corpora:
            files += train_corpus_files(Path(corpora[task]), TASK_LANGUAGES[task])
        elif task in DEV_FALLBACK and MIRROR:
            pair, name = DEV_FALLBACK[task]
            paths = [
                Path(MIRROR, "newstest", f"{pair}.{name}.{lang}.gz")
                for lang in TASK_LANGUAGES[task]
            ]
            files += [path for path in paths if path.is_file()]
    return list(dict.fromkeys(str(path) for path in files))


def llm_main_prompt(scope):
    """(variant, demonstrations) of the LLM-PP predictions Table 11 and the robustness run
    use in a scope: the full prompt (else the last configured variant) with the most
    demonstrations.
    """
    variants = config["llm"]["variants"]
    variant = "full" if "full" in variants else variants[-1]
    return variant, max(llm_scope_demonstrations(scope))


def llm_main_predictions(scope):
    """Each setup's predictions with the main prompt (`llm_main_prompt`)."""
    variant, k = llm_main_prompt(scope)
    return [
        f"results/{scope}/llm_pp/{name}/{variant}-k{k}/predictions.jsonl"
        for name in LLM_PREDICTORS
    ]


def llm_main_setup_predictions(wildcards):
    """The main-prompt predictions of one setup (`{scope}`, `{llm}`)."""
    variant, k = llm_main_prompt(wildcards.scope)
    return f"results/{wildcards.scope}/llm_pp/{wildcards.llm}/{variant}-k{k}/predictions.jsonl"


def llm_robustness_args(name):
    """`llm_predict_args` of a setup with `llm.robustness_samples` replies per architecture
    (each sample its own cached request; sample 0 is the ordinary run's reply)."""
    return llm_predict_args(name, samples=config["llm"]["robustness_samples"])


def llm_robustness_files(scope):
    """Robustness predictions and usage of every setup in a scope."""
    return [
        path
        for name in LLM_PREDICTORS
        for path in outputs_of(rules.llm_pp_robustness_predict, scope=scope, llm=name)
    ]


def llm_robustness_predictions(scope):
    """Robustness predictions of every setup in a scope."""
    return [
        f"results/{scope}/llm_pp/{name}/robustness/predictions.jsonl"
        for name in LLM_PREDICTORS
    ]


def table11_inputs(wildcards):
    """What Table 11 reads: the TFS-Eval set and the LLM-PP predictions; for the experiment's
    own set also its supernet (timed in the job) with the prepared data, and the distilled
    MLPs of every split seed."""
    inputs = {
        "tfs_eval": llm_scope_tfs_eval(wildcards),
        "predictions": llm_main_predictions(wildcards.scope),
    }
    if wildcards.scope != "paper":
        inputs.update(
            supernet=f"results/{EXP}/supernet/model.pt",
            manifest=data_files()["manifest"],
            valid=data_files()["valid"],
            distill=distill_models(),
        )
    return inputs


def table11_options(wildcards, input):
    """Options of `nasflow predictors table11` beyond the TFS-Eval set and the outputs (a
    list, see `shell_args`)."""
    options = [
        "--task",
        ",".join(llm_scope_tasks(wildcards.scope)),
        "--predictions",
        *input.predictions,
    ]
    if wildcards.scope != "paper":
        options += ["--distill-models", *input.distill, "--supernet", input.supernet]
        options += ["--data", str(Path(input.manifest).parent)]
        options += ["--config-json", run_config("train", "evaluate")]
    return [str(option) for option in options]


def table11_gpu(wildcards):
    """The `gpu` resource of Table 11: the supernet's as in supernet_quality; none for the
    released sets (nothing runs a model there)."""
    return 0 if wildcards.scope == "paper" else uses_gpu("train")(wildcards)


SEARCH = config["search"]
# Filled in by validation (null: the first latency target).
SEARCH_TARGET = SEARCH["latency_target"]
DISTILL = config["distill"]


def distill_split_seed():
    """TFS-Eval split seed whose distilled MLP scores the search."""
    seed = DISTILL["search_split_seed"]
    return config["tfs"]["split_seeds"][0] if seed is None else seed


def distill_label(llm):
    """Table label of the MLP distilled from one LLM-PP setup."""
    entry = LLM_PREDICTORS[llm]
    if entry["provider"] == "offline":
        return "LLM-Distill-PP offline stand-in (no LLM)"
    return f"LLM-Distill-PP {entry['provider']}/{entry['model']}"


def distill_archs_option():
    """`--archs FILE`, or `--n N --sample-seed SEED` (the experiment seed: the sample has a
    stream of its own and excludes the TFS-Eval architectures); a list, see `shell_args`.
    """
    if DISTILL["archs_file"]:
        return shell_args({"--archs": DISTILL["archs_file"]})
    return shell_args({"--n": DISTILL["num_archs"], "--sample-seed": config["seed"]})


def distill_models():
    """The distilled MLP of every split seed (their Table 1 row is mean ± std over seeds)."""
    return [
        f"results/{EXP}/distill/{DISTILL['llm']}/seed{split}/model.pt"
        for split in config["tfs"]["split_seeds"]
    ]


def method_predictors(method):
    """Predictor names a search method's schedule uses."""
    entry = SEARCH["methods"][method]
    return {entry["default"], *(s["predictor"] for s in entry.get("segments", []))}


def search_inputs(wildcards):
    """Supernet and data, the distilled MLP when the schedule uses it, the latency predictor."""
    inputs = {
        "supernet": rules.train_supernet.output.model,
        "manifest": data_files()["manifest"],
        "valid": data_files()["valid"],
        "latency": f"results/{EXP}/latency/{SEARCH_TARGET}/predictor/model.pt",
    }
    if "distill" in method_predictors(wildcards.method):
        inputs["distill"] = (
            f"results/{EXP}/distill/{DISTILL['llm']}/seed{distill_split_seed()}/model.pt"
        )
    if "supernet-mlp" in method_predictors(wildcards.method):
        inputs["supernet_mlp"] = f"results/{EXP}/distill/supernet/model.pt"
    return inputs


def search_config(wildcards):
    """`--config-json` of one search: only its own method and constraint, so adding a method
    or a constraint to the config does not rerun the searches already done."""
    search = {
        k: v
        for k, v in SEARCH.items()
        if k not in ("run", "seeds", "method_seeds", "final_train")
    }
    search["run"] = [wildcards.method]
    search["methods"] = {wildcards.method: SEARCH["methods"][wildcards.method]}
    search["constraints"] = {
        wildcards.constraint: SEARCH["constraints"][wildcards.constraint]
    }
    keys = (
        "experiment",
        "seed",
        "space",
        "threads",
        "model",
        "train",
        "evaluate",
        "latency",
    )
    return json.dumps(
        {**{k: config[k] for k in keys}, "search": search}, sort_keys=True
    )


def search_state(wildcards):
    """The search's resumable state, in a folder per settings (see `state_key`)."""
    run = f"{wildcards.method}/{wildcards.constraint}/seed{wildcards.seed}"
    return f"state/{EXP}/search/{run}/{state_key(search_config(wildcards))}"


def search_options(wildcards, input):
    """`--distill`, `--supernet-mlp` and `--latency-predictor` options of `nasflow search run`
    (a list, see `shell_args`)."""
    return shell_args(
        {
            "--latency-predictor": input.latency,
            "--distill": input.get("distill"),
            "--supernet-mlp": input.get("supernet_mlp"),
        }
    )


def search_runs():
    """(method, constraint, seed) of every search rule all runs."""
    return [
        (method, constraint, seed)
        for method in SEARCH["run"]
        for constraint in SEARCH["constraints"]
        for seed in SEARCH["method_seeds"].get(method, SEARCH["seeds"])
    ]


def search_run_dirs():
    """The folders of those searches."""
    return [f"results/{EXP}/search/{m}/{c}/seed{s}" for m, c, s in search_runs()]


def search_final_files():
    """What the search tables read from each run."""
    names = (
        "best.json",
        "timing.json",
        "history.csv",
        "final/score.json",
        "final/latency.json",
    )
    return [f"{folder}/{name}" for folder in search_run_dirs() for name in names]


LTS = config["lts"]


def lts_measure_threads():
    """Cores an LTS measurement job reserves (see measurement_cores)."""
    return measurement_cores(LTS["measure"].get("threads", 1))


def lts_proxy_corpus():
    """The Penn Treebank folder of the proxy check (`lts.proxy_check.corpus` or the mirror's)."""
    corpus = LTS["proxy_check"].get("corpus")
    if corpus:
        return corpus
    return str(Path(MIRROR) / "ptb") if MIRROR else None


def lts_targets():
    """The LTS chain: text set, search, case study, and the proxy check when PTB is available;
    nothing (with the reason) without a text corpus."""
    if resolve_text_corpus(LTS) is None:
        print(
            "nasflow: skipping the LTS chain: its latency per character needs a text corpus: "
            "set NASFLOW_MIRROR (with ptb/), lts.text.corpus or lts.proxy_check.corpus",
            file=sys.stderr,
        )
        return []
    targets = [
        *rules.lts_text.output,
        *rules.lts_search.output,
        *rules.lts_case_study.output,
    ]
    if LTS["proxy_check"].get("enabled", True):
        if lts_proxy_corpus() is not None:
            targets += rules.lts_proxy_check.output
        else:
            print(
                "nasflow: skipping the LTS proxy check: set NASFLOW_MIRROR (with ptb/) or "
                "lts.proxy_check.corpus",
                file=sys.stderr,
            )
    return targets


def tfs_scores():
    """Score files of every TFS-Eval architecture."""
    return [f"results/{EXP}/tfs/{arch_id}/score.json" for arch_id in TFS_ARCHS]


def data_files():
    """The prepared corpus of this experiment."""
    out = f"results/{EXP}/data"
    return {
        "spm": f"{out}/spm.model",
        "train": f"{out}/train.npz",
        "valid": f"{out}/valid.npz",
        "test": f"{out}/test.npz",
        "manifest": f"{out}/manifest.json",
    }


def paper_tables():
    """Tables 1 and 11 and LLM-PP's robustness (A.8.4) on the released TFS-Eval sets, when
    they are available."""
    if config["paper"]["enabled"] and TFS_EVAL_DIR is not None:
        return [
            *rules.table1_baselines.output,
            *llm_pp_files("paper"),
            *outputs_of(rules.llm_pp_evaluate, scope="paper"),
            *outputs_of(rules.table11, scope="paper"),
            *llm_robustness_files("paper"),
            *outputs_of(rules.llm_pp_robustness, scope="paper"),
        ]
    return []


def needs_tfs_set(stage):
    """An input function that stops a stage needing a TFS-Eval set of at least two
    architectures, when it is requested, with the reason (evaluated only for requested jobs).
    """

    def check(wildcards):
        if len(TFS_ARCHS) < 2:
            raise ValueError(
                f"target {stage} needs a TFS-Eval set: config key tfs.num_archs must be >= 2 "
                f"(it is {len(TFS_ARCHS)})"
            )
        return []

    return check


def outputs_of(job_rule, **wildcards):
    """Every output path of `job_rule` for one value of each wildcard."""
    return expand(list(job_rule.output), **wildcards)


def stage_artifacts(stage):
    """Every file a stage writes: what `snakemake <stage>` and `rule all` request. Naming each
    artifact (not only the last of a chain) makes deleting any of them rerun the job that writes
    it, and, by modification time, the jobs downstream of it."""
    tfs_set = len(TFS_ARCHS) >= 2
    runs = search_runs()
    if stage == "data":
        return list(data_files().values())
    if stage == "supernet":
        return list(rules.train_supernet.output)
    if stage == "latency":
        return [
            path
            for target in config["latency"]["targets"]
            for writer in (rules.latency_dataset, rules.latency_predictor)
            for path in outputs_of(writer, target=target)
        ]
    if stage == "tfs":
        files = [
            path
            for arch_id in TFS_ARCHS
            for writer in (rules.train_arch, rules.score_arch)
            for path in outputs_of(writer, arch_id=arch_id)
        ]
        return files + (list(rules.tfs_eval.output) if tfs_set else [])
    if not tfs_set:
        return paper_tables() if stage in ("llm_pp", "tables") else []
    if stage == "llm_pp":
        return [
            *rules.supernet_quality.output,
            *llm_pp_files(EXP),
            *outputs_of(rules.llm_pp_evaluate, scope=EXP),
            *paper_tables(),
        ]
    if stage == "distill":
        seeds = config["tfs"]["split_seeds"]
        files = [
            path
            for writer in (rules.distill_dataset, rules.distill_train)
            for path in outputs_of(writer, llm=DISTILL["llm"], split=seeds)
        ]
        if any("supernet-mlp" in method_predictors(method) for method in SEARCH["run"]):
            files += [
                *rules.supernet_mlp_dataset.output,
                *rules.supernet_mlp_train.output,
            ]
        return files
    stage_rules = {
        "search": (rules.run_search,),
        "final": (rules.train_final, rules.score_final, rules.measure_final),
    }
    if stage in stage_rules:
        return [
            path
            for method, constraint, seed in runs
            for writer in stage_rules[stage]
            for path in outputs_of(
                writer, method=method, constraint=constraint, seed=seed
            )
        ]
    if stage == "tables":
        return [
            *rules.search_tables.output,
            *outputs_of(rules.llm_pp_evaluate, scope=EXP),
            *outputs_of(rules.table11, scope=EXP),
            *llm_robustness_files(EXP),
            *outputs_of(rules.llm_pp_robustness, scope=EXP),
            *paper_tables(),
        ]
    raise ValueError(f"unknown stage {stage!r}")


def all_targets():
    """Everything `rule all` builds for this config (every stage's artifacts of each enabled
    chain)."""
    targets = []
    if HSNAS:
        stages = (
            "data",
            "supernet",
            "latency",
            "tfs",
            "llm_pp",
            "distill",
            "search",
            "final",
            "tables",
        )
        targets += [path for stage in stages for path in stage_artifacts(stage)]
        if config["paper"]["enabled"] and TFS_EVAL_DIR is None:
            print(
                "nasflow: skipping the paper tables: set NASFLOW_MIRROR or paper.tfs_eval_dir "
                "to the released TFS-Eval folder (llmas/train-test_seedarchs)",
                file=sys.stderr,
            )
    if "lts" in config["chains"]:
        targets += lts_targets()
    return list(dict.fromkeys(targets))
