# LLM-Distill-PP: architectures labelled by LLM-PP and an MLP per TFS-Eval split seed; and the
# distilled HAT baseline, an MLP on supernet scores (when a search schedule uses it).


localrules:
    distill_dataset,


rule distill_dataset:
    """Label architectures with LLM-PP for distillation (LLM-Distill-PP)."""
    input:
        tfs_eval=rules.tfs_eval.output[0],
    output:
        csv="results/{exp}/distill/{llm}/seed{split}/dataset.csv",
        usage="results/{exp}/distill/{llm}/seed{split}/usage.json",
    log:
        "logs/{exp}/distill_dataset/{llm}-seed{split}.log",
    benchmark:
        "benchmarks/{exp}/distill_dataset/{llm}-seed{split}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    resources:
        llm=1,
        mem_mb=2000,
        runtime=lambda wildcards, attempt: estimate.llm_label_minutes(
            config, wildcards.llm, DISTILL["num_archs"], attempt
        ),
    params:
        config=lambda wildcards: distill_dataset_config(wildcards.llm),
    shell:
        "nasflow distill dataset --config-json {params.config:q} --tfs-eval {input.tfs_eval:q}"
        " --llm {wildcards.llm:q} --seed {wildcards.split:q}"
        " --out {output.csv:q} --usage {output.usage:q} > {log:q} 2>&1"


rule distill_train:
    """Train the LLM-Distill-PP MLP on one split seed's labels."""
    input:
        dataset=rules.distill_dataset.output.csv,
        tfs_eval=rules.tfs_eval.output[0],
    output:
        model="results/{exp}/distill/{llm}/seed{split}/model.pt",
        meta="results/{exp}/distill/{llm}/seed{split}/model.json",
    log:
        "logs/{exp}/distill_train/{llm}-seed{split}.log",
    benchmark:
        "benchmarks/{exp}/distill_train/{llm}-seed{split}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=per_attempt(60),
    params:
        config=job_config("distill.mlp"),
        name=lambda wildcards: distill_label(wildcards.llm),
        task=EXP,
    shell:
        "nasflow distill train --config-json {params.config:q} --dataset {input.dataset:q}"
        " --name {params.name:q} --tfs-eval {input.tfs_eval:q} --task {params.task:q}"
        " --seed {wildcards.split:q} --threads {threads:q} --out {output.model:q} > {log:q} 2>&1"


rule supernet_mlp_dataset:
    """Score architectures with the supernet for the distilled HAT baseline."""
    input:
        supernet=lambda wildcards: supernet_model(),
        manifest=rules.prepare_data.output.manifest,
        valid=rules.prepare_data.output.valid,
    output:
        "results/{exp}/distill/supernet/dataset.csv",
    log:
        "logs/{exp}/supernet_mlp_dataset.log",
    benchmark:
        "benchmarks/{exp}/supernet_mlp_dataset.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=uses_gpu("train"),
        mem_mb=memory(8000),
        runtime=lambda wildcards, attempt: estimate.supernet_scoring_minutes(
            config, DISTILL["supernet_archs"], gpu_job("train", wildcards), attempt
        ),
    params:
        config=job_config(
            *BASE_SECTIONS, "train", "evaluate", "tfs", "distill.supernet_archs"
        ),
        data=lambda wildcards, input: Path(input.manifest).parent,
    shell:
        "nasflow distill score-supernet --config-json {params.config:q}"
        " --supernet {input.supernet:q} --data {params.data:q}"
        " --out {output:q} > {log:q} 2>&1"


rule supernet_mlp_train:
    """Train the MLP on supernet scores (distilled HAT)."""
    input:
        rules.supernet_mlp_dataset.output,
    output:
        model="results/{exp}/distill/supernet/model.pt",
        meta="results/{exp}/distill/supernet/model.json",
    log:
        "logs/{exp}/supernet_mlp_train.log",
    benchmark:
        "benchmarks/{exp}/supernet_mlp_train.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=per_attempt(60),
    params:
        config=job_config("distill.mlp"),
    shell:
        "nasflow distill train --config-json {params.config:q} --dataset {input:q}"
        " --name 'Distilled HAT (MLP on supernet scores)' --threads {threads:q}"
        " --out {output.model:q} > {log:q} 2>&1"


STAGE_ARTIFACTS["distill"] = distill_artifacts


rule distill:
    """Stage target: the distillation datasets and MLPs."""
    input:
        needs_tfs_set("distill"),
        stage_artifacts("distill"),
