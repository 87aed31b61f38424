# Zero-cost proxies (grad-norm, snip, synflow) of every TFS-Eval architecture, at initialisation
# on one fixed batch: the experiment's training data for its own set, the mirror's newstest2013
# with a BPE built from it for the released sets. Table 1 reads them (llm_pp.smk, paper.smk).


rule zero_cost_scores:
    """Zero-cost proxies (grad-norm, snip, synflow) of every TFS-Eval architecture."""
    input:
        unpack(zero_cost_inputs),
    output:
        scores="results/{scope}/zero_cost/scores.csv",
        meta="results/{scope}/zero_cost/scores.json",
    log:
        "logs/{scope}/zero_cost_scores.log",
    benchmark:
        "benchmarks/{scope}/zero_cost_scores.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=memory(8000),
        runtime=per_attempt(120),
    params:
        tasks=lambda wildcards: llm_scope_tasks(wildcards.scope),
        source=zero_cost_source,
        work="state/{scope}/zero_cost",
        batch_tokens=ZERO_COST["batch_tokens"],
        bpe_vocab=ZERO_COST["bpe_vocab"],
        seed=ZERO_COST["seed"],
    shell:
        "nasflow zero-cost score --tfs-eval {input.tfs_eval:q} --task {params.tasks:q}"
        " {params.source:q} --work {params.work:q} --batch-tokens {params.batch_tokens:q}"
        " --bpe-vocab {params.bpe_vocab:q} --seed {params.seed:q} --threads {threads:q}"
        " --out {output.scores:q} --json {output.meta:q} > {log:q} 2>&1"


STAGE_ARTIFACTS["zero_cost"] = zero_cost_artifacts


rule zero_cost:
    """Stage target: the zero-cost scores."""
    input:
        stage_artifacts("zero_cost"),
