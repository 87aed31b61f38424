# The weight-sharing supernets, one per kind (HAT's SuperTransformer, layer- or neuron-wise
# Mixture-of-Supernets), trained by the same loop (SPOS or sandwich). Their quality as predictors
# is measured on the TFS-Eval architectures (tfs.smk, rule supernet_quality).
# Priorities (train_supernet, latency_dataset, the searches and final trainings) start the
# critical path first; the LTS chain fills the cores that are left.


rule train_supernet:
    """Train one weight-sharing supernet (HAT or Mixture-of-Supernets) of a kind."""
    input:
        train=rules.prepare_data.output.train,
        valid=rules.prepare_data.output.valid,
        manifest=rules.prepare_data.output.manifest,
    output:
        model="results/{exp}/supernet/{kind}/model.pt",
        curve="results/{exp}/supernet/{kind}/curve.csv",
    log:
        "logs/{exp}/train_supernet/{kind}.log",
    benchmark:
        "benchmarks/{exp}/train_supernet/{kind}.tsv"
    priority: 50
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        **train_resources("supernet", SUPERNET),
        mem_mb=memory(16000),
        runtime=lambda wildcards, attempt: estimate.train_minutes(
            config, SUPERNET, gpu_job("supernet", wildcards), attempt
        ),
    params:
        launch=train_launch(SUPERNET),
        config=lambda wildcards: job_config(
            *BASE_SECTIONS, supernet=supernet_section(wildcards.kind)
        ),
        data=lambda wildcards, input: Path(input.manifest).parent,
        state="state/{exp}/supernet/{kind}",
    shell:
        "{params.launch:q} supernet train --config-json {params.config:q} --data {params.data:q}"
        " --out {output.model:q} --curve {output.curve:q} --state-dir {params.state:q}"
        " --no-progress > {log:q} 2>&1"


STAGE_ARTIFACTS["supernet"] = supernet_artifacts


rule supernet:
    """Stage target: every configured supernet kind."""
    input:
        stage_artifacts("supernet"),
