# Results recomputed from the data released with the LLM-PP paper (UBC-NLP/llmas).


rule table1_baselines:
    input:
        tfs_eval=str(TFS_EVAL_DIR),
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
        runtime=10,
    params:
        tasks=",".join(config["paper"]["tasks"]),
    shell:
        "nasflow predictors evaluate --tfs-eval {input.tfs_eval:q} --task {params.tasks:q}"
        " --out {output.csv:q} --markdown {output.md:q} --plot {output.png:q} > {log:q} 2>&1"
