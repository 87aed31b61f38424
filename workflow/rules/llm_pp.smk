# LLM-PP on a TFS-Eval set: predictions per LLM setup, prompt variant and number of
# demonstrations (through the reply cache), then their Table 1 rows beside the baselines.
# Scope `paper`: the sets released with the paper; scope {experiment}: the set built from this
# experiment's own from-scratch runs (rule tfs_eval). Task examples (prompt instruction 2) come
# from a task's training data: the built set's own pool, or for the released tasks the corpus named
# in llm.task_example_corpora, else the WMT'14 development set newstest2013 of the mirror (never a
# test set; nasflow.llm.examples). Then Table 11 (time for 10 architectures and quality of each
# predictor) and LLM-PP's robustness to repeated samples (A.8.4).


# The API keys' environment variables must be set before any job runs (never in configs).
if LLM_API_KEY_ENVS:

    envvars:
        *LLM_API_KEY_ENVS,


# API-calling jobs run where the key and the network are (not on compute nodes).
localrules:
    llm_pp_predict,
    llm_pp_robustness_predict,


rule llm_pp_predict:
    """LLM-PP predictions of one setup, prompt variant and number of demonstrations."""
    input:
        tfs_eval=llm_scope_tfs_eval,
        examples=llm_task_example_files,
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
        runtime=per_attempt(24 * 60),
    params:
        config=lambda wildcards: job_config(
            llm=llm_job_section(wildcards.llm, wildcards.scope)
        ),
        tasks=lambda wildcards: llm_scope_tasks(wildcards.scope),
    shell:
        "nasflow llm-pp predict --config-json {params.config:q} --llm {wildcards.llm:q}"
        " --tfs-eval {input.tfs_eval:q} --task {params.tasks:q}"
        " --variant {wildcards.variant:q} --demonstrations {wildcards.k:q}"
        " --out {output.predictions:q} --usage {output.usage:q} > {log:q} 2>&1"


rule llm_pp_evaluate:
    """Table 1: LLM-PP quality (MAE, Kendall) against the baselines."""
    input:
        tfs_eval=llm_scope_tfs_eval,
        predictions=lambda wildcards: llm_pp_predictions(wildcards.scope),
        distill=lambda wildcards: [] if wildcards.scope == "paper" else distill_models(),
        zero_cost=lambda wildcards: zero_cost_scores(wildcards.scope) or [],
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
        runtime=per_attempt(10),
    params:
        tasks=lambda wildcards: llm_scope_tasks(wildcards.scope),
        distill=lambda wildcards, input: (
            ["--distill-models", *input.distill] if input.distill else []
        ),
        options=lambda wildcards, input: table1_options(wildcards.scope, input),
    shell:
        "nasflow llm-pp evaluate --tfs-eval {input.tfs_eval:q} --task {params.tasks:q}"
        " --predictions {input.predictions:q} {params.distill:q} --baselines {params.options:q}"
        " --out {output.csv:q}"
        " --markdown {output.md:q} --ablation {output.ablation:q}"
        " --ablation-markdown {output.ablation_md:q} --plot {output.plot:q} > {log:q} 2>&1"


rule table11:
    """Table 11: prediction time and quality of the predictors."""
    input:
        unpack(table11_inputs),
    output:
        csv="results/{scope}/tables/table11.csv",
        md=report(
            "results/{scope}/tables/table11.md",
            caption="../report/table11.rst",
            category="Prediction time and robustness (Table 11, A.8.4)",
            subcategory="{scope}",
        ),
    log:
        "logs/{scope}/table11.log",
    benchmark:
        "benchmarks/{scope}/table11.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=table11_gpu,
        mem_mb=memory(8000),
        runtime=table11_runtime,
    params:
        options=table11_options,
    shell:
        "nasflow predictors table11 --tfs-eval {input.tfs_eval:q} {params.options:q}"
        " --out {output.csv:q} --markdown {output.md:q} > {log:q} 2>&1"


# Every test architecture asked llm.robustness_samples times with the prompt Table 11 uses;
# sample 0 is the ordinary run's reply, from the reply cache.
rule llm_pp_robustness_predict:
    """LLM-PP predictions repeated for the robustness study (A.8.4)."""
    input:
        tfs_eval=llm_scope_tfs_eval,
        examples=llm_task_example_files,
        # After the ordinary run, whose replies are sample 0 here (never asked twice).
        ordinary=llm_main_setup_predictions,
    output:
        predictions="results/{scope}/llm_pp/{llm}/robustness/predictions.jsonl",
        usage="results/{scope}/llm_pp/{llm}/robustness/usage.json",
    log:
        "logs/{scope}/llm_pp_robustness_predict/{llm}.log",
    benchmark:
        "benchmarks/{scope}/llm_pp_robustness_predict/{llm}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    resources:
        llm=1,
        mem_mb=2000,
        runtime=per_attempt(24 * 60),
    params:
        config=lambda wildcards: job_config(
            llm=llm_job_section(wildcards.llm, wildcards.scope, robustness=True)
        ),
        tasks=lambda wildcards: llm_scope_tasks(wildcards.scope),
        # The prompt of the ordinary run it extends (that input's variant and k).
        variant=lambda wildcards: llm_main_prompt(wildcards.scope)[0],
        k=lambda wildcards: llm_main_prompt(wildcards.scope)[1],
    shell:
        "nasflow llm-pp predict --config-json {params.config:q} --llm {wildcards.llm:q}"
        " --robustness --tfs-eval {input.tfs_eval:q} --task {params.tasks:q}"
        " --variant {params.variant:q} --demonstrations {params.k:q}"
        " --out {output.predictions:q} --usage {output.usage:q} > {log:q} 2>&1"


rule llm_pp_robustness:
    """The robustness table of LLM-PP (A.8.4)."""
    input:
        predictions=lambda wildcards: llm_robustness_predictions(wildcards.scope),
    output:
        csv="results/{scope}/tables/llm_pp_robustness.csv",
        md=report(
            "results/{scope}/tables/llm_pp_robustness.md",
            caption="../report/llm_pp_robustness.rst",
            category="Prediction time and robustness (Table 11, A.8.4)",
            subcategory="{scope}",
        ),
    log:
        "logs/{scope}/llm_pp_robustness.log",
    benchmark:
        "benchmarks/{scope}/llm_pp_robustness.tsv"
    conda:
        "../../envs/nasflow.yaml"
    resources:
        mem_mb=2000,
        runtime=per_attempt(10),
    params:
        samples=config["llm"]["robustness_samples"],
    shell:
        "nasflow predictors robustness --predictions {input.predictions:q}"
        " --samples {params.samples:q} --out {output.csv:q} --markdown {output.md:q} > {log:q} 2>&1"


STAGE_ARTIFACTS["llm_pp"] = llm_pp_artifacts


rule llm_pp:
    """Stage target: LLM-PP predictions and tables."""
    input:
        needs_tfs_set("llm_pp"),
        stage_artifacts("llm_pp"),
