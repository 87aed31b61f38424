# LLM-PP on a TFS-Eval set: predictions per LLM setup, prompt variant and number of
# demonstrations (through the reply cache), then their Table 1 rows beside the baselines.
# Scope `paper`: the sets released with the paper; scope {experiment}: the set built from this
# experiment's own from-scratch runs (rule tfs_eval). Task examples (prompt instruction 2) come
# from a task's training data: the built set's own pool, or for the released tasks the corpus named
# in llm.task_example_corpora, else the WMT'14 development set newstest2013 of the mirror (never a
# test set; nasflow.llm.examples).

from nasflow.llm.examples import DEV_FALLBACK, TASK_LANGUAGES, train_corpus_files


def llm_task_example_corpora(scope):
    """Training corpora named for the scope's released tasks (`llm.task_example_corpora`)."""
    corpora = config["llm"].get("task_example_corpora") or {}
    return {task: corpora[task] for task in llm_scope_tasks(scope) if task in corpora}


def llm_task_example_args(scope):
    """`--examples-train TASK=DIR ...` for the scope's named training corpora."""
    corpora = llm_task_example_corpora(scope)
    if not corpora:
        return ""
    pairs = " ".join(
        shlex.quote(f"{task}={folder}") for task, folder in corpora.items()
    )
    return f"--examples-train {pairs}"


def llm_task_example_files(wildcards):
    """Files the scope's task examples are read from, so that a new or changed source reruns
    the predictions (prompts change with it): each named training corpus (made first when a
    rule writes it, e.g. fetch_corpus), else the mirror's development set where present.
    """
    corpora = llm_task_example_corpora(wildcards.scope)
    files = []
    for task in llm_scope_tasks(wildcards.scope):
        if task in corpora:
            files += train_corpus_files(Path(corpora[task]), TASK_LANGUAGES[task])
        elif task in DEV_FALLBACK and MIRROR:
            pair, name = DEV_FALLBACK[task]
            paths = [
                Path(MIRROR, "newstest", f"{pair}.{name}.{lang}.gz")
                for lang in TASK_LANGUAGES[task]
            ]
            files += [path for path in paths if path.is_file()]
    return list(dict.fromkeys(str(path) for path in files))


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
        runtime=24 * 60,
    params:
        options=lambda wildcards: llm_predict_args(wildcards.llm),
        tasks=lambda wildcards: " ".join(llm_scope_tasks(wildcards.scope)),
        examples=lambda wildcards: llm_task_example_args(wildcards.scope),
    shell:
        "nasflow llm-pp predict --tfs-eval {input.tfs_eval} --task {params.tasks}"
        " --variant {wildcards.variant} --demonstrations {wildcards.k} {params.options}"
        " {params.examples}"
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
