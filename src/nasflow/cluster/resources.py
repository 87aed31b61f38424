"""Scheduler resources of the workflow's jobs, estimated from the job's size in the config.

Every estimate is `work / rate` in seconds, turned into minutes by `runtime_minutes`:
`ceil(max(MIN_MINUTES, SAFETY x (seconds + JOB_OVERHEAD_S) / 60)) x attempt`, so a retried
job (Snakemake's `attempt`, profile key `retries`) asks for twice the time, then three times.
Work is counted in forward FLOPs (`nasflow.efficiency.counts`, the space's largest
architecture: a safe upper bound for sampled subnets); a training token costs three forward
passes. Rates are per device: `CPU_FLOPS x sqrt(threads)` on CPU, `GPU_FLOPS` on one GPU; a
decoding step costs at least `STEP_S` (small models are latency-bound, not FLOP-bound).

Calibration (2-core reference VM, demo run benchmarks/, busy): supernet training 614k tokens of
the demo space in 272 s (45 GFLOP/s on one thread), a supernet scoring of 300 valid sentences in
0.94 s (42 GFLOP/s), an LTS text-prediction candidate's 23 inferences in 8.5 s on two threads
(78 GFLOP/s), the lts_gpt2 pretraining 4.1M tokens in 8 min on two threads (67 GFLOP/s);
hence `CPU_FLOPS` 40 GFLOP/s. `GPU_FLOPS` is not measured here: 10 TFLOP/s is half of what
fairseq reaches on a V100 in fp16 (Ott et al. 2018), as HAT's small models use a GPU less well.
config/README.md ("SLURM resources") states the formula per job and compares it with the demo.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nasflow.config.sections import MeasureSettings, ParetoSettings

#: Factor on every estimate (on top of the per-attempt growth).
SAFETY = 2.0
#: Seconds every job spends outside its counted work (start, imports, data, checkpoints).
JOB_OVERHEAD_S = 300.0
#: Smallest runtime asked for, minutes.
MIN_MINUTES = 10
#: Effective forward FLOP/s of one CPU thread (more threads: x sqrt(threads)).
CPU_FLOPS = 40e9
#: Effective FLOP/s of one GPU (assumed, see the module docstring).
GPU_FLOPS = 10e12
#: Least seconds of one incremental decoding step (kernel launches, Python): the demo space's
#: 20-step translations take 4-27 ms on the reference CPU, HAT's WMT ones 100-200 ms on a GPU.
STEP_S = {"cpu": 0.001, "cuda": 0.01}
#: Sentences of a valid or test split when the config does not bound them (newstest: ~3000).
SPLIT_SENTENCES = 3000
#: Seconds per LLM request (the API's answer time; requests run `llm.concurrency` at a time);
#: the offline stand-in answers at once.
LLM_REQUEST_S = {"offline": 0.05, "openai": 10.0}
#: Extra seconds per measured HAT architecture: 1 s, plus per million parameters 0.1 s for the
#: ONNX export and sessions (onnxruntime) or 0.02 s for the model build (torch).
MEASURE_OVERHEAD_S_PER_M = {"onnxruntime": 0.1, "torch": 0.02}
#: What the LTS measurement adds per candidate, as a multiple of the estimated inference
#: time (README, "LTS measurement, per candidate": 46-62 s with the export path, 16-17 s with
#: the template path, for 23 inferences this module puts at 12 s).
LTS_OVERHEAD_RATIO = {"export": 4.0, "template": 1.0}


def runtime_minutes(seconds: float, attempt: int = 1) -> int:
    """Minutes to ask for a job whose counted work takes `seconds`, on its `attempt`-th try."""
    base = max(MIN_MINUTES, SAFETY * (seconds + JOB_OVERHEAD_S) / 60)
    return math.ceil(base) * max(1, attempt)


def per_attempt(minutes: int, attempt: int = 1) -> int:
    """A fixed runtime for jobs whose size the config does not set (tables, small models),
    growing with the attempt as the estimates do."""
    return minutes * max(1, attempt)


def memory_mb(base_mb: int, attempt: int = 1) -> int:
    """Memory to ask for: `base_mb`, half as much again on each retry (an out-of-memory kill is
    a common reason for one)."""
    return int(base_mb * (1 + 0.5 * (max(1, attempt) - 1)))


def flops_per_second(gpu: bool, threads: int = 1) -> float:
    """Effective FLOP/s of one job: one GPU, or `threads` CPU threads."""
    return GPU_FLOPS if gpu else CPU_FLOPS * math.sqrt(max(1, threads))


def _space(config: Mapping[str, Any]) -> Any:
    from nasflow.space.hat import get_space

    return get_space(config["space"])


def pair_flops(config: Mapping[str, Any], arch: Any = None) -> float:
    """Forward FLOPs of one sentence pair (the space's measuring length) through `arch`
    (default: the space's largest architecture), output layer over `data.vocab_size`
    included."""
    from nasflow.efficiency.counts import count_flops

    arch = _space(config).largest() if arch is None else arch
    return float(count_flops(arch, config["data"]["vocab_size"]))


def token_flops(config: Mapping[str, Any], arch: Any = None) -> float:
    """Forward FLOPs per token (a pair's FLOPs over its length)."""
    return pair_flops(config, arch) / _space(config).measure_len


def _sentences(limit: int) -> int:
    """Sentences of a split read with a `valid_sentences`-style limit (0 = all)."""
    return limit or SPLIT_SENTENCES


def train_minutes(
    config: Mapping[str, Any],
    settings: Mapping[str, Any],
    gpu: bool,
    attempt: int = 1,
    arch: Any = None,
) -> int:
    """Training (supernet, TFS-Eval architecture, final model): `max_updates x update_freq x
    max_tokens` tokens per process at 3 forward passes each of `arch` (default: the largest;
    x the subnets per update under sandwich sampling), plus a validation every
    `valid_interval_updates`."""
    per_token = token_flops(config, arch)
    subnets = 1
    if settings.get("sampling") == "sandwich":
        subnets = 2 + settings.get("sandwich_random", 1)
    tokens = settings["max_updates"] * settings["update_freq"] * settings["max_tokens"]
    interval = settings.get("valid_interval_updates") or settings["max_updates"]
    validations = settings["max_updates"] // interval + 1
    valid = _sentences(settings.get("valid_sentences", 0)) * _space(config).measure_len
    flops = 3 * tokens * per_token * subnets + validations * valid * per_token
    return runtime_minutes(flops / flops_per_second(gpu, config["threads"]), attempt)


def score_minutes(config: Mapping[str, Any], gpu: bool, attempt: int = 1) -> int:
    """Beam-search BLEU of one model on the valid and test splits: each sentence's beams
    through the model once, and at least `STEP_S` per decoding step of each batch."""
    evaluate = config["evaluate"]
    sentences = 2 * SPLIT_SENTENCES
    length = _space(config).measure_len
    flops = sentences * evaluate["beam"] * pair_flops(config)
    longest = evaluate["max_len_a"] * length + evaluate["max_len_b"]
    steps = math.ceil(sentences / evaluate["batch_sentences"]) * longest
    seconds = flops / flops_per_second(gpu, config["threads"])
    seconds += steps * STEP_S["cuda" if gpu else "cpu"]
    return runtime_minutes(seconds, attempt)


def supernet_scoring_minutes(
    config: Mapping[str, Any], archs: int, gpu: bool, attempt: int = 1
) -> int:
    """`archs` supernet scorings (validation loss on `evaluate.valid_sentences`, 0 = all)."""
    valid = _sentences(config["evaluate"]["valid_sentences"])
    flops = archs * valid * pair_flops(config)
    return runtime_minutes(flops / flops_per_second(gpu, config["threads"]), attempt)


def search_scorings(search: Mapping[str, Any], method: str) -> int:
    """Scorings of one search: population x the method's iterations (HAT's reference
    protocol; `cached` and `fast` score fewer, so this bounds them)."""
    return search["population"] * search["methods"][method]["iterations"]


def search_minutes(config: Mapping[str, Any], method: str, gpu: bool, attempt: int = 1) -> int:
    """One evolutionary search: its supernet scorings (distillation-scored iterations count as
    supernet-scored ones: a safe bound)."""
    archs = search_scorings(config["search"], method)
    return supernet_scoring_minutes(config, archs, gpu, attempt)


def measure_seconds(config: Mapping[str, Any], target: str) -> float:
    """Seconds to measure one architecture on a latency target: warm-up and timed runs, each
    an encoder pass and `length` decoder steps of a `beam`-wide search (FLOPs or `STEP_S` per
    step, whichever is longer), doubled by `drift_correction`, up to `1 + max_retries` times
    under the robust protocol; plus the export or model build."""
    latency = config["latency"]
    spec = latency["targets"][target]
    length = latency["length"] or _space(config).measure_len
    gpu = spec["device"] == "cuda"
    run_flops = latency["beam"] * pair_flops(config)
    run = max(run_flops / flops_per_second(gpu, spec["threads"]), length * STEP_S[spec["device"]])
    runs = latency["warmup"] + latency["runs"]
    if latency["drift_correction"]:
        runs *= 2
    if latency["protocol"] == "robust":
        runs *= 1 + latency["robust"]["max_retries"]
    from nasflow.efficiency.counts import count_params

    params_m = count_params(_space(config).largest()) / 1e6
    return runs * run + 1.0 + params_m * MEASURE_OVERHEAD_S_PER_M[spec["backend"]]


def latency_dataset_minutes(config: Mapping[str, Any], target: str, attempt: int = 1) -> int:
    """The latency dataset: `dataset_size x passes` measured architectures."""
    latency = config["latency"]
    archs = latency["dataset_size"] * latency["passes"]
    return runtime_minutes(archs * measure_seconds(config, target), attempt)


def measure_final_minutes(config: Mapping[str, Any], target: str, attempt: int = 1) -> int:
    """One final model measured on the search's target."""
    return runtime_minutes(measure_seconds(config, target), attempt)


def llm_label_minutes(config: Mapping[str, Any], setup: str, archs: int, attempt: int = 1) -> int:
    """`archs` LLM-PP labels from the `llm.predictors` entry `setup` (one request each,
    `llm.concurrency` in flight)."""
    (entry,) = [e for e in config["llm"]["predictors"] if e["name"] == setup]
    concurrency = max(1, config["llm"].get("concurrency", 1))
    request = LLM_REQUEST_S.get(entry["provider"], LLM_REQUEST_S["openai"])
    return runtime_minutes(archs * request / concurrency, attempt)


def decoder_token_flops(n_layer: int, d_model: int, d_inner: int, vocab: int) -> float:
    """Forward FLOPs per token of a homogeneous GPT-2 decoder with a `vocab`-way head."""
    from nasflow.space.gpt import GPTArch
    from nasflow.space.gpt_params import decoder_params

    arch = GPTArch.uniform(n_layer, d_model, d_inner, max(1, d_model // 64))
    return 2.0 * (decoder_params(arch) + vocab * d_model)


def lts_candidates(lts: Mapping[str, Any]) -> int:
    """Candidates an LTS search measures: the population, then mutations + crossovers per
    iteration; with screening, `initial` then at most `budget` per iteration."""
    search = ParetoSettings.from_mapping(lts.get("search") or {})
    candidates = search.population + search.iterations * (search.mutations + search.crossovers)
    screen = lts.get("screen") or {}
    if screen.get("enabled") and screen.get("budget") is not None:
        candidates = min(
            candidates, screen.get("initial", 20) + search.iterations * screen["budget"]
        )
    return candidates


def lts_measure_seconds(lts: Mapping[str, Any]) -> float:
    """Seconds to measure one candidate of the LTS space: warm-up and timed inferences of a
    typical decoder (halfway between the space's smallest and largest: a search measures
    candidates from all over it) through the longest prompt plus the new tokens, with an
    `lts.measure.vocab_size`-way head, plus the measurement path's overhead."""
    from nasflow.lts.runner import lts_space

    measure = MeasureSettings.from_mapping(lts.get("measure") or {})
    space = lts_space(lts)
    smallest, largest = space.decoder_param_range()
    smallest = max(smallest or 0, space.min_decoder_params or 0)
    largest = min(largest or 0, space.max_decoder_params or math.inf)
    typical = (smallest + largest) / 2
    per_token = 2.0 * (typical + measure.vocab_size * max(space.d_model_choices))
    tokens = measure.prompt_tokens + measure.new_tokens
    gpu = measure.device == "cuda"
    inference = max(
        tokens * per_token / flops_per_second(gpu, measure.threads),
        measure.new_tokens * STEP_S[measure.device],
    )
    timed = (measure.warmup + measure.runs) * inference
    return timed * (1 + LTS_OVERHEAD_RATIO.get(measure.graphs, 7.0)) + 1.0


def lts_search_minutes(lts: Mapping[str, Any], attempt: int = 1) -> int:
    """The LTS search: every candidate it measures (the cache makes a retry cheaper)."""
    return runtime_minutes(lts_candidates(lts) * lts_measure_seconds(lts), attempt)


def lts_case_study_minutes(lts: Mapping[str, Any], attempt: int = 1) -> int:
    """The case study: every architecture it measures (`lts_case_study_archs`)."""
    return runtime_minutes(lts_case_study_archs(lts) * lts_measure_seconds(lts), attempt)


def lts_case_study_archs(lts: Mapping[str, Any]) -> int:
    """The baseline and each selected candidate's head variants (no limit: as many
    candidates as the search's population)."""
    selection = lts.get("selection") or {}
    limit = selection.get("limit")
    if limit is None:
        limit = ParetoSettings.from_mapping(lts.get("search") or {}).population
    return 1 + limit * len(selection.get("heads") or [1])


def text_prediction_minutes(
    config: Mapping[str, Any], phase: str, models: int, attempt: int = 1
) -> int:
    """Pretraining or finetuning (`phase`) of `models` decoders of the text-prediction case
    study, each `steps x batch_tokens` tokens at 3 forward passes, on CPU threads: every model
    as large as the baseline x (1 + `lts.selection.margin`) (the candidates' bound) with a
    `text_prediction.vocab_size`-way head."""
    lts, section = config["lts"], config["text_prediction"]
    base = lts["baseline"]
    per_token = decoder_token_flops(
        base["n_layer"], base["d_model"], base["d_inner"], section["vocab_size"]
    )
    per_token *= 1 + lts["selection"]["margin"]
    settings = section[phase]
    tokens = models * settings["steps"] * settings["batch_tokens"]
    seconds = 3 * tokens * per_token / flops_per_second(False, config["threads"])
    return runtime_minutes(seconds, attempt)


def proxy_check_minutes(config: Mapping[str, Any], attempt: int = 1) -> int:
    """The LTS proxy check: `k` decoders of `lts.proxy_check.space` (each as large as its
    largest), `steps x batch x seq_len` tokens each, with a 10,000-word Penn Treebank head."""
    from nasflow.lts.runner import lts_space

    check = config["lts"]["proxy_check"]
    space = lts_space({"space": check["space"]})
    _, largest = space.decoder_param_range()
    per_token = 2.0 * ((largest or 0) + 10_000 * max(space.d_model_choices))
    tokens = check["k"] * check["steps"] * check["batch"] * check["seq_len"]
    seconds = 3 * tokens * per_token / flops_per_second(False, config["threads"])
    return runtime_minutes(seconds, attempt)


def text_prediction_latency_minutes(config: Mapping[str, Any], attempt: int = 1) -> int:
    """ONNX Runtime latency of every trained text-prediction model (baseline and candidates,
    pretrained and finetuned), `text_prediction.latency_rounds` times each."""
    models = 2 * (1 + text_prediction_models(config, "candidates"))
    rounds = config["text_prediction"]["latency_rounds"]
    return runtime_minutes(models * rounds * lts_measure_seconds(config["lts"]), attempt)


def text_prediction_models(config: Mapping[str, Any], group: str) -> int:
    """Decoders a text-prediction group trains: the baseline, or each selected candidate's
    head variants (no limit: the search's population)."""
    if group == "baseline":
        return 1
    return lts_case_study_archs(config["lts"]) - 1


def slurm_placement(placement: Mapping[str, Any] | None) -> dict[str, Any]:
    """Resources of the SLURM executor plugin for a `slurm` placement (latency targets,
    `lts.slurm`): `slurm_partition`, `constraint`, and `slurm_extra: --exclusive`; only those
    the placement sets (an absent key keeps the profile's)."""
    placement = placement or {}
    resources: dict[str, Any] = {}
    if placement.get("partition"):
        resources["slurm_partition"] = placement["partition"]
    if placement.get("constraint"):
        resources["constraint"] = placement["constraint"]
    if placement.get("exclusive"):
        resources["slurm_extra"] = "--exclusive"
    return resources
