# Evolutionary searches (HAT, HS-NAS and the configured others) under each constraint, one job
# per (method, constraint, seed), scored by the predictors the method's schedule names.


rule run_search:
    """One evolutionary search (method, constraint, seed)."""
    input:
        unpack(search_inputs),
    output:
        best="results/{exp}/search/{method}/{constraint}/seed{seed}/best.json",
        arch="results/{exp}/search/{method}/{constraint}/seed{seed}/best_arch.json",
        history="results/{exp}/search/{method}/{constraint}/seed{seed}/history.csv",
        scored="results/{exp}/search/{method}/{constraint}/seed{seed}/scored.csv",
        timing="results/{exp}/search/{method}/{constraint}/seed{seed}/timing.json",
    log:
        "logs/{exp}/search/{method}-{constraint}-seed{seed}.log",
    benchmark:
        "benchmarks/{exp}/search/{method}-{constraint}-seed{seed}.tsv"
    priority: 30
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=uses_gpu("train"),
        mem_mb=memory(8000),
        runtime=lambda wildcards, attempt: estimate.search_minutes(
            config, wildcards.method, gpu_job("train", wildcards), attempt
        ),
    params:
        config=search_config,
        data=lambda wildcards, input: Path(input.manifest).parent,
        options=search_options,
        out=lambda wildcards, output: Path(output.best).parent,
        # The root: `nasflow search run` keeps its state in a subfolder per settings.
        state="state/{exp}/search/{method}/{constraint}/seed{seed}",
    shell:
        "nasflow search run --config-json {params.config:q} --method {wildcards.method:q}"
        " --constraint {wildcards.constraint:q} --seed {wildcards.seed:q}"
        " --supernet {input.supernet:q} --data {params.data:q} {params.options:q}"
        " --out {params.out:q} --state-root {params.state:q} > {log:q} 2>&1"


STAGE_ARTIFACTS["search"] = search_artifacts


rule search:
    """Stage target: every configured search."""
    input:
        needs_tfs_set("search"),
        stage_artifacts("search"),
