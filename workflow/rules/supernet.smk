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
        model="results/{exp}/supernet/model.pt",
        curve="results/{exp}/supernet/curve.csv",
    log:
        "logs/{exp}/train_supernet.log",
    benchmark:
        "benchmarks/{exp}/train_supernet.tsv"
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
        state="state/{exp}/supernet",
    shell:
        "nasflow supernet train --config-json {params.config:q} --data {params.data:q}"
        " --out {output.model:q} --curve {output.curve:q} --state-dir {params.state:q}"
        " --no-progress > {log:q} 2>&1"


STAGE_ARTIFACTS["supernet"] = lambda: outputs_of(rules.train_supernet, exp=EXP)


rule supernet:
    input:
        stage_artifacts("supernet"),
