# Helpers of the llm_pp stage (rules in ../llm_pp.smk).


def llm_scope_tfs_eval(wildcards):
    """The TFS-Eval folder of a scope: the released one, or the one built from our runs."""
    if wildcards.scope == "paper":
        return str(TFS_EVAL_DIR)
    return path_of(rules.tfs_eval.output[0], exp=EXP)


def llm_scope_tasks(scope):
    """Tasks LLM-PP is evaluated on in a scope."""
    return config["paper"]["tasks"] if scope == "paper" else [EXP]


def llm_scope_demonstrations(scope):
    """Numbers of demonstrations in a scope: `paper.demonstrations` on the released sets,
    `llm.demonstrations` on the experiment's own (validated against its train split)."""
    section = "paper" if scope == "paper" else "llm"
    return config[section]["demonstrations"]


def llm_scope_prompts(scope):
    """(setup, variant, demonstrations) of every configured LLM-PP run in a scope."""
    return [
        (name, variant, k)
        for name in LLM_PREDICTORS
        for variant in config["llm"]["variants"]
        for k in llm_scope_demonstrations(scope)
    ]


def llm_pp_files(scope):
    """Prediction and usage files of every configured setup, variant and number of
    demonstrations."""
    return [
        path
        for name, variant, k in llm_scope_prompts(scope)
        for path in outputs_of(
            rules.llm_pp_predict, scope=scope, llm=name, variant=variant, k=k
        )
    ]


def llm_pp_predictions(scope):
    """Prediction files of every configured setup, variant and number of demonstrations."""
    return [
        path_of(
            rules.llm_pp_predict.output.predictions,
            scope=scope,
            llm=name,
            variant=variant,
            k=k,
        )
        for name, variant, k in llm_scope_prompts(scope)
    ]


def llm_task_example_corpora(scope):
    """Training corpora named for the scope's released tasks (`llm.task_example_corpora`)."""
    corpora = config["llm"].get("task_example_corpora") or {}
    return {task: corpora[task] for task in llm_scope_tasks(scope) if task in corpora}


def llm_job_section(name, scope=None, robustness=False):
    """The `llm` section one job of setup `name` reads (its `--config-json`; see
    nasflow.predictors.llm_jobs.llm_job_section): the scope's task example corpora, none
    without a scope."""
    tasks = llm_scope_tasks(scope) if scope is not None else None
    return llm_jobs.llm_job_section(config, name, tasks, robustness)


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


def llm_main_setup_predictions(wildcards):
    """The main-prompt predictions of one setup (`{scope}`, `{llm}`)."""
    variant, k = llm_main_prompt(wildcards.scope)
    return path_of(
        rules.llm_pp_predict.output.predictions,
        scope=wildcards.scope,
        llm=wildcards.llm,
        variant=variant,
        k=k,
    )


def llm_main_predictions(scope):
    """Each setup's predictions with the main prompt (`llm_main_prompt`)."""
    variant, k = llm_main_prompt(scope)
    return [
        path_of(
            rules.llm_pp_predict.output.predictions,
            scope=scope,
            llm=name,
            variant=variant,
            k=k,
        )
        for name in LLM_PREDICTORS
    ]


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
        path_of(
            rules.llm_pp_robustness_predict.output.predictions, scope=scope, llm=name
        )
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
            supernet=supernet_model(),
            manifest=path_of(rules.prepare_data.output.manifest, exp=EXP),
            valid=path_of(rules.prepare_data.output.valid, exp=EXP),
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
        options += ["--config-json", job_config(*BASE_SECTIONS, "train", "evaluate")]
    return [str(option) for option in options]


def table11_gpu(wildcards):
    """The `gpu` resource of Table 11: the supernet's as in supernet_quality; none for the
    released sets (nothing runs a model there)."""
    return 0 if wildcards.scope == "paper" else uses_gpu("train")(wildcards)


def table11_runtime(wildcards, attempt):
    """Minutes of Table 11: the supernet scores every architecture of the experiment's own set
    (nothing runs a model on the released sets)."""
    if wildcards.scope == "paper":
        return estimate.per_attempt(30, attempt)
    gpu = table11_gpu(wildcards) > 0
    return estimate.supernet_scoring_minutes(config, len(TFS_ARCHS), gpu, attempt)


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


def llm_pp_artifacts():
    """Files of the llm_pp stage (only the paper tables without a TFS-Eval set)."""
    if not has_tfs_set():
        return paper_tables()
    return [
        *outputs_of(rules.supernet_quality, exp=EXP),
        *llm_pp_files(EXP),
        *outputs_of(rules.llm_pp_evaluate, scope=EXP),
        *paper_tables(),
    ]
