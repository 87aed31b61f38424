# TFS-Eval: architectures trained from scratch (one job each) and scored (loss, BLEU), the
# quality of every trained supernet kind as a predictor of those scores (one job, one file), then
# all gathered into a TFS-Eval set in the released layout.

from nasflow.config.resolve import tfs_train_size


rule train_arch:
    """Train one TFS-Eval architecture from scratch."""
    input:
        train=rules.prepare_data.output.train,
        valid=rules.prepare_data.output.valid,
        manifest=rules.prepare_data.output.manifest,
    output:
        model="results/{exp}/tfs/{arch_id}/model.pt",
        curve="results/{exp}/tfs/{arch_id}/curve.csv",
    log:
        "logs/{exp}/train_arch/{arch_id}.log",
    benchmark:
        "benchmarks/{exp}/train_arch/{arch_id}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        **train_resources("train", config["train"]),
        mem_mb=memory(16000),
        runtime=lambda wildcards, attempt: estimate.train_minutes(
            config,
            config["train"],
            gpu_job("train", wildcards),
            attempt,
            arch=TFS_ARCHS[wildcards.arch_id],
        ),
    params:
        launch=train_launch(config["train"]),
        config=job_config(*BASE_SECTIONS, "train"),
        arch=lambda wildcards: TFS_ARCHS[wildcards.arch_id].to_json(),
        data=lambda wildcards, input: Path(input.manifest).parent,
        state="state/{exp}/tfs/{arch_id}",
    shell:
        "{params.launch:q} arch train --config-json {params.config:q} --arch {params.arch:q}"
        " --data {params.data:q} --out {output.model:q} --curve {output.curve:q}"
        " --state-dir {params.state:q} --no-progress > {log:q} 2>&1"


rule score_arch:
    """Score one trained TFS-Eval architecture (validation loss, BLEU)."""
    input:
        model=rules.train_arch.output.model,
        manifest=rules.prepare_data.output.manifest,
        valid=rules.prepare_data.output.valid,
        test=rules.prepare_data.output.test,
    output:
        scores="results/{exp}/tfs/{arch_id}/score.json",
        hypotheses=directory("results/{exp}/tfs/{arch_id}/hypotheses"),
    log:
        "logs/{exp}/score_arch/{arch_id}.log",
    benchmark:
        "benchmarks/{exp}/score_arch/{arch_id}.tsv"
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


rule supernet_quality:
    """Score every supernet kind as a predictor of the TFS-Eval scores."""
    input:
        models=lambda wildcards: [supernet_model(kind) for kind in supernet_kinds()],
        manifest=rules.prepare_data.output.manifest,
        valid=rules.prepare_data.output.valid,
        scores=tfs_scores(),
    output:
        "results/{exp}/tfs/supernet_quality.json",
    log:
        "logs/{exp}/supernet_quality.log",
    benchmark:
        "benchmarks/{exp}/supernet_quality.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=uses_gpu("train"),
        mem_mb=memory(8000),
        runtime=lambda wildcards, attempt: estimate.supernet_scoring_minutes(
            config,
            len(TFS_ARCHS) * len(supernet_kinds()),
            gpu_job("train", wildcards),
            attempt,
        ),
    params:
        config=job_config(*BASE_SECTIONS, "train", "evaluate"),
        data=lambda wildcards, input: Path(input.manifest).parent,
    shell:
        "nasflow supernet quality --config-json {params.config:q} --model {input.models:q}"
        " --data {params.data:q} --scores {input.scores:q} --out {output:q} > {log:q} 2>&1"


rule tfs_eval:
    """Gather the from-scratch scores into a TFS-Eval set (released layout)."""
    input:
        scores=tfs_scores(),
        manifest=rules.prepare_data.output.manifest,
        supernet_quality=rules.supernet_quality.output,
    output:
        directory("results/{exp}/tfs_eval"),
    log:
        "logs/{exp}/tfs_eval.log",
    conda:
        "../../envs/nasflow.yaml"
    resources:
        mem_mb=2000,
        runtime=per_attempt(10),
    params:
        data=lambda wildcards, input: Path(input.manifest).parent,
        seeds=config["tfs"]["split_seeds"],
        train=tfs_train_size(config),
        pool=config["tfs"]["example_pool"],
        seed=config["seed"],
        task=EXP,
    shell:
        "nasflow tfs-eval build --scores {input.scores:q} --data {params.data:q} --task {params.task:q}"
        " --seeds {params.seeds:q} --train {params.train:q} --example-pool {params.pool:q}"
        " --pool-seed {params.seed:q} --supernet-quality {input.supernet_quality:q}"
        " --out {output:q} > {log:q} 2>&1"


STAGE_ARTIFACTS["tfs"] = tfs_artifacts


rule tfs:
    """Stage target: the TFS-Eval trainings, scores and set."""
    input:
        stage_artifacts("tfs"),
