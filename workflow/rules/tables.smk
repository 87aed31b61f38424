# The paper's search tables (3/4, 5, 16, 12, 13) and the convergence plot; the stage target also
# names the experiment's Table 1 (LLM-PP), Table 11 and robustness outputs (llm_pp.smk).


rule search_tables:
    """Tables 3/4, 5 and 16 from the searched and trained runs."""
    input:
        runs=search_final_files(),
    output:
        results="results/{exp}/tables/search/results.csv",
        table3_csv="results/{exp}/tables/search/table3.csv",
        table5_csv="results/{exp}/tables/search/table5.csv",
        table15_csv="results/{exp}/tables/search/table15.csv",
        table16_csv="results/{exp}/tables/search/table16.csv",
        table12_csv="results/{exp}/tables/search/table12.csv",
        table13_csv="results/{exp}/tables/search/table13.csv",
        table3=report(
            "results/{exp}/tables/search/table3.md",
            caption="../report/table3.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
        table5=report(
            "results/{exp}/tables/search/table5.md",
            caption="../report/table5.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
        table15=report(
            "results/{exp}/tables/search/table15.md",
            caption="../report/table15.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
        table16=report(
            "results/{exp}/tables/search/table16.md",
            caption="../report/table16.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
        table12=report(
            "results/{exp}/tables/search/table12.md",
            caption="../report/table12.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
        table13=report(
            "results/{exp}/tables/search/table13.md",
            caption="../report/table13.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
        summary="results/{exp}/tables/search/summary.json",
        plot=report(
            "results/{exp}/tables/search/convergence.png",
            caption="../report/convergence.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
    log:
        "logs/{exp}/search_tables.log",
    conda:
        "../../envs/nasflow.yaml"
    resources:
        mem_mb=2000,
        runtime=per_attempt(10),
    params:
        runs=search_run_dirs(),
        out=lambda wildcards, output: Path(output.results).parent,
    shell:
        "nasflow search tables --runs {params.runs:q} --out {params.out:q} > {log:q} 2>&1"


# Table 15 on request (`snakemake table15`): the searches over the Neuron-wise MoS supernet, with
# and without LLM-Distill-PP iterations, trained and measured like the others.
rule table15_tables:
    """Table 15: the searches over the Neuron-wise MoS supernet."""
    input:
        runs=lambda wildcards: search_final_files(table15_runs()),
    output:
        directory("results/{exp}/tables/table15"),
    log:
        "logs/{exp}/table15_tables.log",
    conda:
        "../../envs/nasflow.yaml"
    resources:
        mem_mb=2000,
        runtime=per_attempt(10),
    params:
        runs=lambda wildcards: search_run_dirs(table15_runs()),
    shell:
        "nasflow search tables --runs {params.runs:q} --out {output:q} > {log:q} 2>&1"


STAGE_ARTIFACTS["tables"] = tables_artifacts


rule tables:
    """Stage target: every table."""
    input:
        needs_tfs_set("tables"),
        stage_artifacts("tables"),


rule table15:
    """Target: Table 15 and the MoS searches it needs."""
    input:
        needs_tfs_set("table15"),
        path_of(rules.table15_tables.output[0], exp=EXP),
