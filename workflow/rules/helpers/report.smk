# Helpers of the results page (rule in ../report.smk).

_TARGETS = None


def built(paths):
    """The paths among `paths` that this config builds (rule all's targets, the results page
    aside)."""
    global _TARGETS
    if _TARGETS is None:
        _TARGETS = set(all_targets(results_page=False))
    return [path for path in paths if path in _TARGETS]


def page_runs():
    """(method, constraint, seed) of the searches rule all runs."""
    if not HSNAS:
        return []
    return [
        (m, c, s)
        for m, c, s in search_runs()
        if built(
            expand(
                rules.run_search.output.scored, exp=EXP, method=m, constraint=c, seed=s
            )
        )
    ]


def page_tables():
    """(title, csv) of every table this config builds, in the page's order."""
    items = []
    if HSNAS:
        search = rules.search_tables.output
        items += [
            ("Search results (Tables 3/4)", search.table3_csv),
            ("HS-NAS against HAT (Table 5)", search.table5_csv),
            ("Predictor schedules (Table 16)", search.table16_csv),
            ("Per search seed (Table 12)", search.table12_csv),
            ("GFLOPs constraints (Table 13)", search.table13_csv),
            ("Neuron-wise MoS searches (Table 15)", search.table15_csv),
        ]
        items = [(title, path_of(pattern, exp=EXP)) for title, pattern in items]
        items += [
            (
                "Table 1: predictor baselines (released TFS-Eval sets)",
                rules.table1_baselines.output.csv,
            )
        ]
        for scope, where in (
            (EXP, "this experiment"),
            ("paper", "released TFS-Eval sets"),
        ):
            items += [
                (title.format(where), path_of(pattern, scope=scope))
                for title, pattern in (
                    ("Table 1: LLM-PP quality ({})", rules.llm_pp_evaluate.output.csv),
                    ("LLM-PP ablation ({})", rules.llm_pp_evaluate.output.ablation),
                    ("Table 11: prediction time ({})", rules.table11.output.csv),
                    (
                        "LLM-PP robustness, A.8.4 ({})",
                        rules.llm_pp_robustness.output.csv,
                    ),
                )
            ]
    if "lts" in config["chains"]:
        items += [
            (title, path_of(pattern, exp=EXP))
            for title, pattern in (
                ("LTS Pareto frontier", rules.lts_search.output.frontier),
                ("LTS case study", rules.lts_case_study.output.csv),
                ("LTS proxy check", rules.lts_proxy_check.output.csv),
                (
                    "Text prediction: quality (Table 2)",
                    rules.text_prediction_tables.output.table2,
                ),
                (
                    "Text prediction: suggestions (Table 3)",
                    rules.text_prediction_tables.output.table3,
                ),
                (
                    "Text prediction: stop tuning",
                    rules.text_prediction_tables.output.tuning,
                ),
                (
                    "Text prediction: FFN/model ratio",
                    rules.text_prediction_inner_ratio.output.csv,
                ),
            )
        ]
    return [(title, path) for title, path in items if built([path])]


def page_figures():
    """(title, png) of every plot this config builds that the page embeds as it is."""
    items = []
    if HSNAS:
        items += [
            ("Search convergence", path_of(rules.search_tables.output.plot, exp=EXP))
        ]
        items += [
            (
                f"Latency predictor ({target}): predicted against measured",
                path_of(rules.latency_predictor.output.plot, exp=EXP, target=target),
            )
            for target in config["latency"]["targets"]
        ]
        items += [
            (
                f"LLM-PP against from-scratch BLEU ({where})",
                path_of(rules.llm_pp_evaluate.output.plot, scope=scope),
            )
            for scope, where in (
                (EXP, "this experiment"),
                ("paper", "released TFS-Eval sets"),
            )
        ]
        items += [
            (
                "Predictors against from-scratch BLEU (released TFS-Eval sets)",
                rules.table1_baselines.output.png,
            )
        ]
    if "lts" in config["chains"]:
        items += [
            ("LTS Pareto frontier", path_of(rules.lts_search.output.plot, exp=EXP))
        ]
    return [(title, path) for title, path in items if built([path])]


def page_curves():
    """(supernet curves {label: csv}, TFS-Eval curves)."""
    if not HSNAS:
        return {}, []
    supernets = {
        f"{kind} supernet": path
        for kind in supernet_kinds()
        for path in built(expand(rules.train_supernet.output.curve, exp=EXP, kind=kind))
    }
    tfs = built(expand(rules.train_arch.output.curve, exp=EXP, arch_id=list(TFS_ARCHS)))
    return supernets, tfs


def page_quality():
    """The supernet-quality file (supernet against from-scratch BLEU), when built."""
    return built(outputs_of(rules.supernet_quality, exp=EXP)) if HSNAS else []


def results_page_inputs(wildcards):
    """Every file the results page reads."""
    runs = page_runs()
    supernets, tfs = page_curves()
    files = search_final_files(runs) if runs else []
    files += [
        path
        for m, c, s in runs
        for pattern in (rules.run_search.output.scored, rules.train_final.output.curve)
        for path in expand(pattern, exp=EXP, method=m, constraint=c, seed=s)
    ]
    files += [*supernets.values(), *tfs, *page_quality()]
    files += [path for _, path in page_tables() + page_figures()]
    return list(dict.fromkeys(files))


def results_page_options(wildcards):
    """The options of `nasflow report results-page` (a list, see `shell_args`)."""
    runs = page_runs()
    supernets, tfs = page_curves()
    words = ["--runs", *search_run_dirs(runs)] if runs else []
    for label, path in supernets.items():
        words += ["--supernet-curve", f"{label}={path}"]
    for path in tfs:
        words += ["--tfs-curve", path]
    for path in page_quality():
        words += ["--supernet-quality", path]
    for title, path in page_tables():
        words += ["--table", f"{title}={path}"]
    for title, path in page_figures():
        words += ["--figure", f"{title}={path}"]
    return words


def results_page_targets():
    """The results page (rule all's last target)."""
    return [path_of(rules.results_page.output.page, exp=EXP)]
