# LLM-PP on a TFS-Eval set: predictions per LLM setup, prompt variant and number of
# demonstrations (through the reply cache), then their Table 1 rows beside the baselines.
# Scope `paper`: the sets released with the paper; scope {experiment}: the set built from this
# experiment's own from-scratch runs (rule tfs_eval).


# The API keys' environment variables must be set before any job runs (never in configs).
if LLM_API_KEY_ENVS:

    envvars:
        *LLM_API_KEY_ENVS,


# API-calling jobs run where the key and the network are (not on compute nodes).
localrules:
    llm_pp_predict,


rule llm_pp_predict:
    input:
        tfs_eval=llm_scope_tfs_eval,
    output:
        predictions="results/{scope}/llm_pp/{llm}/{variant}-k{k}/predictions.jsonl",
        usage="results/{scope}/llm_pp/{llm}/{variant}-k{k}/usage.json",
    log:
        "logs/{scope}/llm_pp_predict/{llm}-{variant}-k{k}.log",
    benchmark:
        "benchmarks/{scope}/llm_pp_predict/{llm}-{variant}-k{k}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    resources:
        llm=1,
        mem_mb=2000,
        runtime=24 * 60,
    params:
        options=lambda wildcards: llm_predict_args(wildcards.llm),
        tasks=lambda wildcards: " ".join(llm_scope_tasks(wildcards.scope)),
    shell:
        "nasflow llm-pp predict --tfs-eval {input.tfs_eval} --task {params.tasks}"
        " --variant {wildcards.variant} --demonstrations {wildcards.k} {params.options}"
        " --out {output.predictions} --usage {output.usage} > {log} 2>&1"


rule llm_pp_evaluate:
    input:
        tfs_eval=llm_scope_tfs_eval,
        predictions=lambda wildcards: llm_pp_predictions(wildcards.scope),
        distill=lambda wildcards: [] if wildcards.scope == "paper" else distill_models(),
    output:
        csv="results/{scope}/tables/table1_llm_pp.csv",
        md=report(
            "results/{scope}/tables/table1_llm_pp.md",
            caption="../report/table1_llm_pp.rst",
            category="Predictor quality (Table 1)",
            subcategory="{scope}",
        ),
        ablation="results/{scope}/tables/table1_llm_pp_ablation.csv",
        ablation_md=report(
            "results/{scope}/tables/table1_llm_pp_ablation.md",
            caption="../report/table1_llm_pp_ablation.rst",
            category="Predictor quality (Table 1)",
            subcategory="{scope}",
        ),
        plot=report(
            "results/{scope}/plots/llm_pp_vs_tfs.png",
            caption="../report/llm_pp_vs_tfs.rst",
            category="Predictor quality (Table 1)",
            subcategory="{scope}",
        ),
    log:
        "logs/{scope}/llm_pp_evaluate.log",
    conda:
        "../../envs/nasflow.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        tasks=lambda wildcards: " ".join(llm_scope_tasks(wildcards.scope)),
        distill=lambda wildcards, input: (
            f"--distill-models {' '.join(input.distill)}" if input.distill else ""
        ),
    shell:
        "nasflow llm-pp evaluate --tfs-eval {input.tfs_eval} --task {params.tasks}"
        " --predictions {input.predictions} {params.distill} --baselines --out {output.csv}"
        " --markdown {output.md} --ablation {output.ablation}"
        " --ablation-markdown {output.ablation_md} --plot {output.plot} > {log} 2>&1"
