# Stage targets: `snakemake <stage>` builds one stage and what it needs (README, "Commands").
# Each names every file its stage writes (`stage_artifacts`), the same files `rule all` names.


rule data:
    input:
        stage_artifacts("data"),


rule supernet:
    input:
        stage_artifacts("supernet"),


rule latency:
    input:
        stage_artifacts("latency"),


rule tfs:
    input:
        stage_artifacts("tfs"),


rule llm_pp:
    input:
        needs_tfs_set("llm_pp"),
        stage_artifacts("llm_pp"),


rule distill:
    input:
        needs_tfs_set("distill"),
        stage_artifacts("distill"),


rule search:
    input:
        needs_tfs_set("search"),
        stage_artifacts("search"),


rule final:
    input:
        needs_tfs_set("final"),
        stage_artifacts("final"),


rule tables:
    input:
        needs_tfs_set("tables"),
        stage_artifacts("tables"),
