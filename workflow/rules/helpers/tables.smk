# Helpers of the tables stage (rules in ../tables.smk).


def search_run_dirs(runs=None):
    """The folders of the searches (run_search's outputs), by default those of every run."""
    return [
        str(
            Path(
                path_of(
                    rules.run_search.output.best,
                    exp=EXP,
                    method=m,
                    constraint=c,
                    seed=s,
                )
            ).parent
        )
        for m, c, s in (search_runs() if runs is None else runs)
    ]


def search_final_files(runs=None):
    """What the search tables read from each run (by default every run)."""
    return [
        path
        for m, c, s in (search_runs() if runs is None else runs)
        for pattern in (
            rules.run_search.output.best,
            rules.run_search.output.timing,
            rules.run_search.output.history,
            rules.score_final.output.scores,
            rules.measure_final.output[0],
        )
        for path in expand(pattern, exp=EXP, method=m, constraint=c, seed=s)
    ]


def tables_artifacts():
    """Files of the tables stage (only the paper tables without a TFS-Eval set)."""
    if not has_tfs_set():
        return paper_tables()
    return [
        *outputs_of(rules.search_tables, exp=EXP),
        *outputs_of(rules.llm_pp_evaluate, scope=EXP),
        *outputs_of(rules.table11, scope=EXP),
        *llm_robustness_files(EXP),
        *outputs_of(rules.llm_pp_robustness, scope=EXP),
        *paper_tables(),
    ]


def table15_runs():
    """(method, constraint, seed) of every search over the Neuron-wise MoS supernet (the
    methods whose `supernet` is neuron-mos), whether or not rule all runs them."""
    methods = [m for m in SEARCH["methods"] if method_supernet(m) == "neuron-mos"]
    if not methods:
        raise ValueError(
            "target table15 needs search.methods over the Neuron-wise MoS supernet "
            "(supernet: neuron-mos), e.g. the defaults neuron-mos and hsnas-neuron-mos"
        )
    return [
        (method, constraint, seed)
        for method in methods
        for constraint in SEARCH["constraints"]
        for seed in SEARCH["method_seeds"].get(method, SEARCH["seeds"])
    ]
