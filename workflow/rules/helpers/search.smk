# Helpers of the search stage (rules in ../search.smk).


def search_inputs(wildcards):
    """Supernet and data, the distilled MLP when the schedule uses it, the latency predictor."""
    inputs = {
        "supernet": supernet_model(method_supernet(wildcards.method)),
        "manifest": rules.prepare_data.output.manifest,
        "valid": rules.prepare_data.output.valid,
        "latency": path_of(
            rules.latency_predictor.output.model, exp=EXP, target=SEARCH_TARGET
        ),
    }
    if "distill" in method_predictors(wildcards.method):
        inputs["distill"] = path_of(
            rules.distill_train.output.model,
            exp=EXP,
            llm=DISTILL["llm"],
            split=distill_split_seed(),
        )
    if "supernet-mlp" in method_predictors(wildcards.method):
        inputs["supernet_mlp"] = rules.supernet_mlp_train.output.model
    if "supernet-calibrated" in method_predictors(wildcards.method):
        inputs["calibration"] = path_of(rules.tfs_eval.output[0], exp=EXP)
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
    return job_config(*BASE_SECTIONS, "train", "evaluate", "latency", search=search)


def search_options(wildcards, input):
    """`--distill`, `--supernet-mlp`, `--calibration` (with the distillation split seed and its
    number of demonstrations) and `--latency-predictor` options of `nasflow search run` (a
    list, see `shell_args`)."""
    calibration = input.get("calibration")
    return shell_args(
        {
            "--latency-predictor": input.latency,
            "--distill": input.get("distill"),
            "--supernet-mlp": input.get("supernet_mlp"),
            "--calibration": calibration,
            "--calibration-seed": distill_split_seed() if calibration else None,
            "--calibration-demonstrations": (
                DISTILL["demonstrations"] if calibration else None
            ),
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


def search_run_outputs(*writers):
    """Every output of `writers` for each search run."""
    return [
        path
        for method, constraint, seed in search_runs()
        for writer in writers
        for path in outputs_of(
            writer, exp=EXP, method=method, constraint=constraint, seed=seed
        )
    ]


def search_artifacts():
    """Files of the search stage: every search run's outputs."""
    return search_run_outputs(rules.run_search) if has_tfs_set() else []
