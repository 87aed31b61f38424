# The weight-sharing SuperTransformer: training (SPOS or sandwich) and its quality as a predictor.
# Priorities (train_supernet, latency_dataset, the searches and final trainings) start the
# critical path first; the LTS chain fills the cores that are left.


rule train_supernet:
    input:
        train=data_files()["train"],
        valid=data_files()["valid"],
        manifest=data_files()["manifest"],
    output:
        model=f"results/{EXP}/supernet/model.pt",
        curve=f"results/{EXP}/supernet/curve.csv",
    log:
        f"logs/{EXP}/train_supernet.log",
    benchmark:
        f"benchmarks/{EXP}/train_supernet.tsv"
    priority: 50
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=uses_gpu("supernet"),
        mem_mb=16000,
        runtime=3 * 24 * 60,
    params:
        config=run_config("supernet"),
        data=lambda wildcards, input: Path(input.manifest).parent,
        state=f"state/{EXP}/supernet",
    shell:
        "nasflow supernet train --config-json {params.config:q} --data {params.data:q}"
        " --out {output.model:q} --curve {output.curve:q} --state-dir {params.state:q}"
        " --no-progress > {log:q} 2>&1"


rule supernet_quality:
    input:
        model=rules.train_supernet.output.model,
        manifest=data_files()["manifest"],
        valid=data_files()["valid"],
        scores=tfs_scores(),
    output:
        f"results/{EXP}/tfs/supernet_quality.json",
    log:
        f"logs/{EXP}/supernet_quality.log",
    benchmark:
        f"benchmarks/{EXP}/supernet_quality.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=uses_gpu("train"),
        mem_mb=8000,
        runtime=120,
    params:
        config=run_config("train", "evaluate"),
        data=lambda wildcards, input: Path(input.manifest).parent,
    shell:
        "nasflow supernet quality --config-json {params.config:q} --model {input.model:q}"
        " --data {params.data:q} --scores {input.scores:q} --out {output:q} > {log:q} 2>&1"
