# The results page: what was run and what won, every table and plot, in one HTML file that
# `snakemake --report` shows first (category "0 Results", and the landing page includes it).


rule results_page:
    """The results page: what was run and what won, every table and plot (one HTML file)."""
    input:
        results_page_inputs,
    output:
        page=report(
            "results/{exp}/report/results.html",
            caption="../report/results_page.rst",
            category="0 Results",
            labels={"page": "results: what was run and what won"},
        ),
    log:
        "logs/{exp}/results_page.log",
    conda:
        "../../envs/nasflow.yaml"
    resources:
        mem_mb=2000,
        runtime=per_attempt(10),
    params:
        options=results_page_options,
    shell:
        "nasflow report results-page --experiment {wildcards.exp:q} --out {output.page:q}"
        " {params.options:q} > {log:q} 2>&1"
