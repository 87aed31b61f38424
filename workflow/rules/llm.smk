# LLM-PP on the released TFS-Eval sets: predictions per LLM setup, prompt variant and number of
# demonstrations (through the reply cache), then their Table 1 rows beside the baselines.


# The API keys' environment variables must be set before any job runs (never in configs).
if LLM_API_KEY_ENVS:

    envvars:
        *LLM_API_KEY_ENVS,


# API-calling jobs run where the key and the network are (not on compute nodes).
localrules:
    llm_pp_predict,


rule llm_pp_predict:
    input:
        tfs_eval=str(TFS_EVAL_DIR),
    output:
        predictions="results/paper/llm_pp/{llm}/{variant}-k{k}/predictions.jsonl",
        usage="results/paper/llm_pp/{llm}/{variant}-k{k}/usage.json",
    log:
        "logs/paper/llm_pp_predict/{llm}-{variant}-k{k}.log",
    benchmark:
        "benchmarks/paper/llm_pp_predict/{llm}-{variant}-k{k}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    resources:
        llm=1,
        mem_mb=2000,
        runtime=24 * 60,
    params:
        options=lambda wildcards: llm_predict_args(wildcards.llm),
        tasks=" ".join(config["paper"]["tasks"]),
    shell:
        "nasflow llm-pp predict --tfs-eval {input.tfs_eval} --task {params.tasks}"
        " --variant {wildcards.variant} --demonstrations {wildcards.k} {params.options}"
        " --out {output.predictions} --usage {output.usage} > {log} 2>&1"


rule llm_pp_evaluate:
    input:
        tfs_eval=str(TFS_EVAL_DIR),
        predictions=llm_pp_predictions(),
    output:
        csv="results/paper/tables/table1_llm_pp.csv",
        md=report(
            "results/paper/tables/table1_llm_pp.md",
            caption="../report/table1_llm_pp.rst",
            category="Paper (released data)",
        ),
    log:
        "logs/paper/llm_pp_evaluate.log",
    conda:
        "../../envs/nasflow.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        tasks=" ".join(config["paper"]["tasks"]),
    shell:
        "nasflow llm-pp evaluate --tfs-eval {input.tfs_eval} --task {params.tasks}"
        " --predictions {input.predictions} --baselines --out {output.csv}"
        " --markdown {output.md} > {log} 2>&1"
