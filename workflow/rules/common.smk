# Shared by every stage: the experiment, wildcard constraints, the config sections, job settings
# (`--config-json`, resources) and the stage registry behind the stage targets and
# `rule all`. Stage-specific helpers live in helpers/<stage>.smk. The config was resolved and
# validated in the Snakefile.

import json
import os
import re
import sys
from pathlib import Path

from nasflow.config.options import BASE_SECTIONS
from nasflow.cluster import resources as estimate
from nasflow.cluster.resources import slurm_placement
from nasflow.config.resolve import resolve_tfs_eval_dir
from nasflow.llm.keys import required_key_envs
from nasflow.llm import plan as llm_jobs
from nasflow.space.hat import get_space, tfs_sample
from nasflow.space.registry import SPACES_ENV, spaces_env_value

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
# A space from a file or a mapping (registered by get_space above): every job process finds it
# by its name through NASFLOW_SPACES (nasflow.space.registry), whatever config sections it reads.
SPACES_VALUE = spaces_env_value()
if SPACES_VALUE:
    os.environ[SPACES_ENV] = SPACES_VALUE
LLM_PREDICTORS = {entry["name"]: entry for entry in config["llm"]["predictors"]}
# Keys the openai setups need (llm_pp.smk's envvars: checked before any job). Only a local server
# (base_url on localhost/127.0.0.1/::1, or plain http:// to a private host) may run without one;
# no base_url (api.openai.com) or a remote https:// one needs its api_key_env set.
LLM_API_KEY_ENVS = required_key_envs(LLM_PREDICTORS.values())
SEARCH = config["search"]
# Filled in by validation (null: the first latency target).
SEARCH_TARGET = SEARCH["latency_target"]
DISTILL = config["distill"]
LTS = config["lts"]


wildcard_constraints:
    # The experiment: every path of its results/, logs/, benchmarks/ and state/ starts with it.
    exp=re.escape(EXP),
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
    kind=r"hat|layer-mos|neuron-mos",


def job_config(*sections, **replaced):
    """The config sections a job's command declares (`section` or `section.entry`, as in
    `nasflow.config.options.add_config_options`), as JSON for its one `--config-json`; a
    keyword replaces a whole section (e.g. one search's own method).

    Passing only these sections (not the whole config) keeps unrelated edits, e.g. to the paper
    tables, from re-triggering expensive training jobs.
    """
    settings = {}
    for name in sections:
        key, _, entry = name.partition(".")
        if entry:
            settings.setdefault(key, {})[entry] = config[key][entry]
        else:
            settings[key] = config[key]
    settings.update(replaced)
    # How the corpus is fetched does not change what a job computes.
    if "data" in settings:
        settings["data"] = {k: v for k, v in settings["data"].items() if k != "fetch"}
    # Nor where SLURM runs a measurement (the jobs' resources, see placement_resources).
    if "targets" in settings.get("latency", {}):
        targets = {
            name: {k: v for k, v in spec.items() if k != "slurm"}
            for name, spec in settings["latency"]["targets"].items()
        }
        settings["latency"] = {**settings["latency"], "targets": targets}
    if isinstance(settings.get("lts"), dict):
        settings["lts"] = {k: v for k, v in settings["lts"].items() if k != "slurm"}
    # Nor does a single training process (the default): adding the keys kept every
    # existing job's command unchanged.
    for name in ("supernet", "train"):
        if name in settings and isinstance(settings[name], dict):
            settings[name] = {
                k: v
                for k, v in settings[name].items()
                if not (k in ("gpus", "nodes") and v == 1)
            }
    return json.dumps(settings, sort_keys=True)


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


def local_cuda_available():
    """Whether this machine has a CUDA device (asked once)."""
    global _LOCAL_CUDA
    if _LOCAL_CUDA is None:
        import torch

        _LOCAL_CUDA = torch.cuda.is_available()
    return _LOCAL_CUDA


_LOCAL_CUDA = None


def runs_locally():
    """Whether jobs run on this machine: the executor is `local` (not a dry run, `--touch` or a
    cluster). `executor_plugin` is public API: snakemake_interface_executor_plugins'
    WorkflowExecutorInterface declares it."""
    plugin = workflow.executor_plugin
    return plugin is not None and plugin.name == "local"


def uses_gpu(section):
    """The `gpu` resource of a section's jobs, decided when the DAG is built: 0 for device cpu;
    for auto, 0 when jobs run on this machine (the local executor) and it has no CUDA, so that
    CPU jobs run side by side; else 1, which asks SLURM for a GPU (and which a dry run shows).
    """

    def gpu(wildcards):
        device = config[section]["device"]
        if device == "cpu":
            return 0
        if device == "auto" and runs_locally():
            return int(local_cuda_available())
        return 1

    return gpu


def measurement_cores(threads):
    """Cores a measurement job reserves, decided when the DAG is built: all of them when jobs
    run on this machine (nothing may run beside a measurement), else the measurement's own
    threads (a cluster job has its own allocation). The measurement itself always uses
    `threads`."""
    cores = workflow.resource_settings.cores
    if runs_locally() and cores:
        return max(threads, cores)
    return threads


def measure_threads(target):
    """Cores a latency job of `target` reserves (see measurement_cores)."""
    return measurement_cores(config["latency"]["targets"][target]["threads"])


def target_uses_gpu(target):
    """1 when the latency target is a GPU."""
    return int(config["latency"]["targets"][target]["device"] == "cuda")


def per_attempt(minutes):
    """`runtime` of a job whose size the config does not set: `minutes`, times the attempt."""
    return lambda wildcards, attempt: estimate.per_attempt(minutes, attempt)


def memory(base_mb):
    """`mem_mb` growing on each retry (nasflow.cluster.resources.memory_mb)."""
    return lambda wildcards, attempt: estimate.memory_mb(base_mb, attempt)


def gpu_job(section, wildcards):
    """Whether a job of `section` asks for a GPU (uses_gpu), for its runtime estimate."""
    return uses_gpu(section)(wildcards) > 0


def target_placement(target):
    """SLURM resources (partition, constraint, --exclusive) of the jobs that measure on a
    latency target: its `slurm` entry (nasflow.cluster.resources.slurm_placement)."""
    return slurm_placement(config["latency"]["targets"][target].get("slurm"))


def latency_dataset_placement():
    """The same for latency_dataset (one resource list for the jobs of every target): each
    resource any target sets, valued per job; None (unset) for a target without it, so
    validation makes every target name a partition once one does."""
    keys = {
        key
        for target in config["latency"]["targets"]
        for key in target_placement(target)
    }
    return {
        key: lambda wildcards, key=key: target_placement(wildcards.target).get(key)
        for key in sorted(keys)
    }


def outputs_of(job_rule, **wildcards):
    """Every output path of `job_rule` for one value of each wildcard."""
    return expand(list(job_rule.output), **wildcards)


def path_of(pattern, **wildcards):
    """One output path of a rule (`rules.x.output.key`) with its wildcards filled in."""
    (path,) = expand(pattern, **wildcards)
    return path


def has_tfs_set():
    """Whether the TFS-Eval set has the two architectures the stages after it need."""
    return len(TFS_ARCHS) >= 2


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


# Stage name -> function listing every file the stage writes; each stage file registers its
# own before its stage target (in the order of the stages).
STAGE_ARTIFACTS = {}


def stage_artifacts(stage):
    """Every file a stage writes: what `snakemake <stage>` and `rule all` request. Naming each
    artifact (not only the last of a chain) makes deleting any of them rerun the job that writes
    it, and, by modification time, the jobs downstream of it."""
    if stage not in STAGE_ARTIFACTS:
        raise ValueError(f"unknown stage {stage!r}")
    return STAGE_ARTIFACTS[stage]()


def all_targets(results_page=True):
    """Everything `rule all` builds for this config (every stage's artifacts of each enabled
    chain, then the results page)."""
    targets = []
    if HSNAS:
        targets += [
            path for stage in STAGE_ARTIFACTS for path in stage_artifacts(stage)
        ]
        if config["paper"]["enabled"] and TFS_EVAL_DIR is None:
            print(
                "nasflow: skipping the paper tables: set NASFLOW_MIRROR or paper.tfs_eval_dir "
                "to the released TFS-Eval folder (llmas/train-test_seedarchs)",
                file=sys.stderr,
            )
    if "lts" in config["chains"]:
        targets += lts_targets() + text_prediction_targets()
    if results_page:
        targets += results_page_targets()
    return list(dict.fromkeys(targets))


# Helpers of each stage (no rules: the stage files include only rules and their targets).
include: "helpers/train.smk"
include: "helpers/supernet.smk"
include: "helpers/tfs.smk"
include: "helpers/zero_cost.smk"
include: "helpers/llm_pp.smk"
include: "helpers/distill.smk"
include: "helpers/search.smk"
include: "helpers/final.smk"
include: "helpers/tables.smk"
include: "helpers/lts.smk"
include: "helpers/text_prediction.smk"
include: "helpers/report.smk"
