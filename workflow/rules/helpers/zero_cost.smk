# Helpers of the zero_cost stage (rules in ../zero_cost.smk).

ZERO_COST = config["zero_cost"]


def zero_cost_enabled(scope):
    """Whether a scope's Table 1 has zero-cost rows (the released sets: zero_cost.released, and
    only with the released folder)."""
    if scope == "paper":
        return ZERO_COST["released"] and TFS_EVAL_DIR is not None
    return ZERO_COST["enabled"] and has_tfs_set()


def zero_cost_inputs(wildcards):
    """The scope's TFS-Eval set and where its batch comes from: the experiment's prepared data,
    or the mirror's newstest2013 for the released sets."""
    inputs = {"tfs_eval": llm_scope_tfs_eval(wildcards)}
    if wildcards.scope != "paper":
        inputs["manifest"] = path_of(rules.prepare_data.output.manifest, exp=EXP)
        inputs["train"] = path_of(rules.prepare_data.output.train, exp=EXP)
    return inputs


def zero_cost_source(wildcards, input):
    """`--data DIR` (the experiment) or `--newstest DIR` (the released sets)."""
    if wildcards.scope == "paper":
        if MIRROR is None:
            raise ValueError(
                "zero_cost.released needs NASFLOW_MIRROR (its newstest/ folder gives the batch)"
            )
        return ["--newstest", str(Path(MIRROR) / "newstest")]
    return ["--data", str(Path(input.manifest).parent)]


def zero_cost_scores(scope):
    """The scope's zero-cost scores file, or None when the scope has no zero-cost rows."""
    if not zero_cost_enabled(scope):
        return None
    return path_of(rules.zero_cost_scores.output.scores, scope=scope)


def zero_cost_artifacts():
    """Files of the zero_cost stage: the experiment's scores (from a TFS-Eval set) and the
    released sets' (when enabled and available)."""
    return [
        path
        for scope in ("paper", EXP)
        if zero_cost_enabled(scope)
        for path in outputs_of(rules.zero_cost_scores, scope=scope)
    ]


def table1_options(scope, input):
    """`--calibrate`, `--calibrate-demonstrations` (the scope's largest LLM-PP k) and
    `--zero-cost` of the Table 1 commands (a list, see `shell_args`)."""
    options = ["--calibrate"]
    options += ["--calibrate-demonstrations", max(llm_scope_demonstrations(scope))]
    if input.get("zero_cost"):
        options += ["--zero-cost", input.zero_cost]
    return [str(option) for option in options]
