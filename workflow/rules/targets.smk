# Stage targets: `snakemake <stage>` builds one stage and what it needs (README, "Commands").
# Each names the same files `rule all` builds for that stage.


rule data:
    input:
        data_files().values(),


rule supernet:
    input:
        rules.train_supernet.output,


rule latency:
    input:
        latency_targets(),


rule tfs:
    input:
        tfs_scores(),
        rules.tfs_eval.output if len(TFS_ARCHS) >= 2 else [],


rule llm_pp:
    input:
        needs_tfs_set("llm_pp"),
        rules.supernet_quality.output,
        expand(rules.llm_pp_evaluate.output, scope=EXP),
        paper_tables(),


rule distill:
    input:
        needs_tfs_set("distill"),
        distill_models(),


rule search:
    input:
        needs_tfs_set("search"),
        [f"{folder}/best.json" for folder in search_run_dirs()],


rule final:
    input:
        needs_tfs_set("final"),
        search_final_files(),


rule tables:
    input:
        needs_tfs_set("tables"),
        rules.search_tables.output,
        expand(rules.llm_pp_evaluate.output, scope=EXP),
        paper_tables(),
