# Helpers of the tables stage (rules in ../tables.smk).


def search_run_dirs():
    """The folders of the searches (rule run_search's)."""
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
        for m, c, s in search_runs()
    ]


def search_final_files():
    """What the search tables read from each run."""
    return [
        path
        for m, c, s in search_runs()
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
