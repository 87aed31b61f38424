# Helpers of the distill stage (rules in ../distill.smk).


def distill_dataset_config(llm):
    """The `--config-json` of `nasflow distill dataset` for setup `llm` (distill.batch_api only
    when on; nasflow.predictors.llm_jobs.dataset_job_config)."""
    return json.dumps(llm_jobs.dataset_job_config(config, llm), sort_keys=True)


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


def distill_models():
    """The distilled MLP of every split seed (their Table 1 row is mean ± std over seeds)."""
    return expand(
        rules.distill_train.output.model,
        exp=EXP,
        llm=DISTILL["llm"],
        split=config["tfs"]["split_seeds"],
    )


def method_predictors(method):
    """Predictor names a search method's schedule uses."""
    entry = SEARCH["methods"][method]
    return {entry["default"], *(s["predictor"] for s in entry.get("segments", []))}


def uses_supernet_mlp():
    """Whether a search that runs uses the MLP on supernet scores."""
    return any("supernet-mlp" in method_predictors(method) for method in SEARCH["run"])


def distill_artifacts():
    """Files of the distill stage: each split seed's dataset and MLP, and the supernet MLP."""
    if not has_tfs_set():
        return []
    seeds = config["tfs"]["split_seeds"]
    files = [
        path
        for writer in (rules.distill_dataset, rules.distill_train)
        for path in outputs_of(writer, exp=EXP, llm=DISTILL["llm"], split=seeds)
    ]
    if uses_supernet_mlp():
        files += [
            *outputs_of(rules.supernet_mlp_dataset, exp=EXP),
            *outputs_of(rules.supernet_mlp_train, exp=EXP),
        ]
    return files
