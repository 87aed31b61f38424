# Latency on each target device: a measured dataset of sampled architectures and HAT's MLP
# latency predictor trained on it (results/{experiment}/latency/{target}/).


rule latency_dataset:
    """Measure the latency of sampled architectures on one latency target."""
    output:
        csv="results/{exp}/latency/{target}/dataset.csv",
        meta="results/{exp}/latency/{target}/dataset.json",
    log:
        "logs/{exp}/latency_dataset/{target}.log",
    benchmark:
        "benchmarks/{exp}/latency_dataset/{target}.tsv"
    priority: 40
    conda:
        "../../envs/nasflow.yaml"
    threads: lambda wildcards: measure_threads(wildcards.target)
    resources:
        **latency_dataset_placement(),
        gpu=lambda wildcards: target_uses_gpu(wildcards.target),
        mem_mb=memory(8000),
        runtime=lambda wildcards, attempt: estimate.latency_dataset_minutes(
            config, wildcards.target, attempt
        ),
    params:
        config=job_config(*BASE_SECTIONS, "latency", "data"),
        state="state/{exp}/latency/{target}",
    shell:
        "nasflow latency dataset --config-json {params.config:q} --target {wildcards.target:q}"
        " --out {output.csv:q} --state-dir {params.state:q} > {log:q} 2>&1"


rule latency_predictor:
    """Train HAT's MLP latency predictor on a target's latency dataset."""
    input:
        rules.latency_dataset.output.csv,
    output:
        model="results/{exp}/latency/{target}/predictor/model.pt",
        evaluation="results/{exp}/latency/{target}/predictor/eval.json",
        plot=report(
            "results/{exp}/latency/{target}/predictor/predicted_vs_measured.png",
            caption="../report/latency_predictor.rst",
            category="Latency",
            subcategory="{target}",
        ),
    log:
        "logs/{exp}/latency_predictor/{target}.log",
    benchmark:
        "benchmarks/{exp}/latency_predictor/{target}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=per_attempt(60),
    params:
        config=job_config("space", "latency.predictor"),
        out=lambda wildcards, output: Path(output.model).parent,
    shell:
        "nasflow latency train-predictor --config-json {params.config:q} --dataset {input:q}"
        " --threads {threads:q} --out {params.out:q}"
        " > {log:q} 2>&1"


STAGE_ARTIFACTS["latency"] = lambda: [
    path
    for target in config["latency"]["targets"]
    for writer in (rules.latency_dataset, rules.latency_predictor)
    for path in outputs_of(writer, exp=EXP, target=target)
]


rule latency:
    """Stage target: each target's latency dataset and predictor."""
    input:
        stage_artifacts("latency"),
