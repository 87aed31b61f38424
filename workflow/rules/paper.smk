# Results recomputed from the data released with the LLM-PP paper (UBC-NLP/llmas): Table 1's
# baselines (the released supernets, raw and calibrated on each seed's demonstrations, #Params,
# #FLOPs and the zero-cost proxies).


rule table1_baselines:
    """Table 1 baselines on the released TFS-Eval sets."""
    input:
        tfs_eval=str(TFS_EVAL_DIR),
        zero_cost=lambda wildcards: zero_cost_scores("paper") or [],
    output:
        csv="results/paper/tables/table1_baselines.csv",
        md=report(
            "results/paper/tables/table1_baselines.md",
            caption="../report/table1_baselines.rst",
            category="Paper (released data)",
        ),
        png=report(
            "results/paper/plots/tfs_vs_predicted.png",
            caption="../report/tfs_vs_predicted.rst",
            category="Paper (released data)",
        ),
    log:
        "logs/paper/table1_baselines.log",
    conda:
        "../../envs/nasflow.yaml"
    resources:
        mem_mb=2000,
        runtime=per_attempt(10),
    params:
        tasks=config["paper"]["tasks"],
        options=lambda wildcards, input: table1_options("paper", input),
    shell:
        "nasflow predictors evaluate --tfs-eval {input.tfs_eval:q} --task {params.tasks:q}"
        " {params.options:q} --out {output.csv:q} --markdown {output.md:q}"
        " --plot {output.png:q} > {log:q} 2>&1"
