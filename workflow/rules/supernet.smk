# The weight-sharing SuperTransformer: training (SPOS or sandwich). Its quality as a predictor is
# measured on the TFS-Eval architectures (tfs.smk, rule supernet_quality).
# Priorities (train_supernet, latency_dataset, the searches and final trainings) start the
# critical path first; the LTS chain fills the cores that are left.


rule train_supernet:
    input:
        train=rules.prepare_data.output.train,
        valid=rules.prepare_data.output.valid,
        manifest=rules.prepare_data.output.manifest,
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
        config=job_config(*BASE_SECTIONS, "supernet"),
        data=lambda wildcards, input: Path(input.manifest).parent,
        state=f"state/{EXP}/supernet",
    shell:
        "nasflow supernet train --config-json {params.config:q} --data {params.data:q}"
        " --out {output.model:q} --curve {output.curve:q} --state-dir {params.state:q}"
        " --no-progress > {log:q} 2>&1"


STAGE_ARTIFACTS["supernet"] = lambda: list(rules.train_supernet.output)


rule supernet:
    input:
        stage_artifacts("supernet"),
