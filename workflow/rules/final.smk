# The searches' winners trained from scratch (with search.final_train's overrides) and scored:
# BLEU, measured latency on the search's latency target.


rule train_final:
    """Train a search's winner from scratch."""
    input:
        arch=rules.run_search.output.arch,
        train=rules.prepare_data.output.train,
        valid=rules.prepare_data.output.valid,
        manifest=rules.prepare_data.output.manifest,
    output:
        model="results/{exp}/search/{method}/{constraint}/seed{seed}/final/model.pt",
        curve="results/{exp}/search/{method}/{constraint}/seed{seed}/final/curve.csv",
    log:
        "logs/{exp}/train_final/{method}-{constraint}-seed{seed}.log",
    benchmark:
        "benchmarks/{exp}/train_final/{method}-{constraint}-seed{seed}.tsv"
    priority: 30
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        **train_resources("train", final_train_settings(config)),
        mem_mb=memory(16000),
        runtime=lambda wildcards, attempt: estimate.train_minutes(
            config, final_train_settings(config), gpu_job("train", wildcards), attempt
        ),
    params:
        launch=train_launch(final_train_settings(config)),
        config=final_train_config(),
        data=lambda wildcards, input: Path(input.manifest).parent,
        state="state/{exp}/final/{method}/{constraint}/seed{seed}",
    shell:
        "{params.launch:q} arch train --config-json {params.config:q} --arch {input.arch:q}"
        " --data {params.data:q} --out {output.model:q} --curve {output.curve:q}"
        " --state-dir {params.state:q} --no-progress > {log:q} 2>&1"


rule score_final:
    """Score a search's trained winner (BLEU)."""
    input:
        model=rules.train_final.output.model,
        manifest=rules.prepare_data.output.manifest,
        valid=rules.prepare_data.output.valid,
        test=rules.prepare_data.output.test,
    output:
        scores="results/{exp}/search/{method}/{constraint}/seed{seed}/final/score.json",
        hypotheses=directory(
            "results/{exp}/search/{method}/{constraint}/seed{seed}/final/hypotheses"
        ),
    log:
        "logs/{exp}/score_final/{method}-{constraint}-seed{seed}.log",
    benchmark:
        "benchmarks/{exp}/score_final/{method}-{constraint}-seed{seed}.tsv"
    priority: 30
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=uses_gpu("train"),
        mem_mb=memory(8000),
        runtime=lambda wildcards, attempt: estimate.score_minutes(
            config, gpu_job("train", wildcards), attempt
        ),
    params:
        config=job_config(*BASE_SECTIONS, "train", "evaluate"),
        data=lambda wildcards, input: Path(input.manifest).parent,
    shell:
        "nasflow arch score --config-json {params.config:q} --model {input.model:q}"
        " --data {params.data:q} --out {output.scores:q} --hypotheses {output.hypotheses:q}"
        " > {log:q} 2>&1"


rule measure_final:
    """Measure a search's trained winner on the search's latency target."""
    input:
        model=rules.train_final.output.model,
        predictor=path_of(
            rules.latency_predictor.output.model, exp=EXP, target=SEARCH_TARGET
        ),
    output:
        "results/{exp}/search/{method}/{constraint}/seed{seed}/final/latency.json",
    log:
        "logs/{exp}/measure_final/{method}-{constraint}-seed{seed}.log",
    benchmark:
        "benchmarks/{exp}/measure_final/{method}-{constraint}-seed{seed}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: lambda wildcards: measure_threads(SEARCH_TARGET)
    resources:
        **target_placement(SEARCH_TARGET),
        gpu=target_uses_gpu(SEARCH_TARGET),
        mem_mb=memory(4000),
        runtime=lambda wildcards, attempt: estimate.measure_final_minutes(
            config, SEARCH_TARGET, attempt
        ),
    params:
        config=job_config(*BASE_SECTIONS, "latency", "data"),
        target=SEARCH_TARGET,
        # written with the predictor's dataset: the reference the labels were scaled to
        meta=path_of(rules.latency_dataset.output.meta, exp=EXP, target=SEARCH_TARGET),
    shell:
        "nasflow latency measure --config-json {params.config:q} --target {params.target:q}"
        " --model {input.model:q} --predictor {input.predictor:q} --dataset-meta {params.meta:q}"
        " --out {output:q} > {log:q} 2>&1"


STAGE_ARTIFACTS["final"] = final_artifacts


rule final:
    """Stage target: the winners trained, scored and measured."""
    input:
        needs_tfs_set("final"),
        stage_artifacts("final"),
