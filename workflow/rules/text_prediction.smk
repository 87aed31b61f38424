# The text-prediction case study's quality side (results/{experiment}/text_prediction/): the
# experiment's vocabulary and corpora, pretraining of the baseline (beside the LTS search) and of
# the case study's candidates, finetuning of the baseline and the best candidate, the suggestion
# engine on the dev and test splits, ONNX Runtime latency of the trained checkpoints, and the
# tuned comparison (Tables 2 and 3). Stage target: `text_prediction`.


rule text_prediction_data:
    """Text-prediction corpora and vocabulary."""
    input:
        # Both corpora are resolved only when a text_prediction job is requested: without one
        # the run stops before any job starts, with an error naming the config key.
        pretrain=lambda wildcards: text_prediction_corpora()[0],
        finetune=lambda wildcards: text_prediction_corpora()[1],
    output:
        manifest="results/{exp}/text_prediction/data/data.json",
    log:
        "logs/{exp}/text_prediction_data.log",
    benchmark:
        "benchmarks/{exp}/text_prediction_data.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=per_attempt(30),
    params:
        config=job_config(*TP_SECTIONS, "lts.text", "lts.proxy_check"),
        out=lambda wildcards, output: Path(output.manifest).parent,
    shell:
        "nasflow text-prediction data --config-json {params.config:q}"
        " --pretrain-corpus {input.pretrain:q} --finetune-corpus {input.finetune:q}"
        " --out {params.out:q} > {log:q} 2>&1"


rule text_prediction_pretrain:
    """Pretrain the baseline or the case study's candidates."""
    input:
        data=rules.text_prediction_data.output.manifest,
        # The candidates come from the LTS case study; the baseline trains beside the search.
        case_study=lambda wildcards: text_prediction_case_study(wildcards.group),
    output:
        models="results/{exp}/text_prediction/pretrain/{group}/models.json",
    log:
        "logs/{exp}/text_prediction_pretrain_{group}.log",
    benchmark:
        "benchmarks/{exp}/text_prediction_pretrain_{group}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=memory(8000),
        runtime=lambda wildcards, attempt: estimate.text_prediction_minutes(
            config,
            "pretrain",
            estimate.text_prediction_models(config, wildcards.group),
            attempt,
        ),
    params:
        config=job_config(*TP_SECTIONS, "lts.baseline"),
        data=lambda wildcards, input: Path(input.data).parent,
        out=lambda wildcards, output: Path(output.models).parent,
        state="state/{exp}/text_prediction/pretrain/{group}",
        case_study=lambda wildcards, input: shell_args(
            {"--case-study": input.case_study or None}
        ),
    shell:
        "nasflow text-prediction pretrain --config-json {params.config:q} --data {params.data:q}"
        " --group {wildcards.group:q} {params.case_study:q} --out {params.out:q}"
        " --state-root {params.state:q} > {log:q} 2>&1"


rule text_prediction_finetune:
    """Finetune a group's pretrained models for sentence completion."""
    input:
        data=rules.text_prediction_data.output.manifest,
        pretrained=rules.text_prediction_pretrain.output.models,
    output:
        summary="results/{exp}/text_prediction/finetune/{group}/finetune.json",
    log:
        "logs/{exp}/text_prediction_finetune_{group}.log",
    benchmark:
        "benchmarks/{exp}/text_prediction_finetune_{group}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=memory(8000),
        runtime=lambda wildcards, attempt: estimate.text_prediction_minutes(
            config,
            "finetune",
            estimate.text_prediction_models(config, wildcards.group),
            attempt,
        ),
    params:
        config=job_config(*TP_SECTIONS),
        data=lambda wildcards, input: Path(input.data).parent,
        out=lambda wildcards, output: Path(output.summary).parent,
        state="state/{exp}/text_prediction/finetune/{group}",
    shell:
        "nasflow text-prediction finetune --config-json {params.config:q} --data {params.data:q}"
        " --pretrained {input.pretrained:q} --out {params.out:q}"
        " --state-dir {params.state:q} > {log:q} 2>&1"


rule text_prediction_suggest:
    """Run the suggestion engine on the dev and test splits."""
    input:
        data=rules.text_prediction_data.output.manifest,
        finetuned=rules.text_prediction_finetune.output.summary,
    output:
        dev="results/{exp}/text_prediction/suggest/{group}/dev.jsonl",
        test="results/{exp}/text_prediction/suggest/{group}/test.jsonl",
    log:
        "logs/{exp}/text_prediction_suggest_{group}.log",
    benchmark:
        "benchmarks/{exp}/text_prediction_suggest_{group}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=per_attempt(120),
    params:
        config=job_config(*TP_SECTIONS),
        data=lambda wildcards, input: Path(input.data).parent,
    shell:
        "nasflow text-prediction suggest --config-json {params.config:q} --data {params.data:q}"
        " --finetuned {input.finetuned:q} --dev {output.dev:q} --test {output.test:q}"
        " > {log:q} 2>&1"


rule text_prediction_latency:
    """ONNX Runtime latency of every trained text-prediction model."""
    input:
        data=rules.text_prediction_data.output.manifest,
        pretrained=expand(
            rules.text_prediction_pretrain.output.models,
            group=TP_GROUPS,
            allow_missing=True,
        ),
        finetuned=expand(
            rules.text_prediction_finetune.output.summary,
            group=TP_GROUPS,
            allow_missing=True,
        ),
    output:
        csv="results/{exp}/text_prediction/latency.csv",
    log:
        "logs/{exp}/text_prediction_latency.log",
    benchmark:
        "benchmarks/{exp}/text_prediction_latency.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: lambda wildcards: lts_measure_threads()
    resources:
        **slurm_placement(LTS["slurm"]),
        mem_mb=memory(8000),
        runtime=lambda wildcards, attempt: estimate.text_prediction_latency_minutes(
            config, attempt
        ),
    params:
        config=job_config(*TP_SECTIONS, "lts.measure"),
        data=lambda wildcards, input: Path(input.data).parent,
    shell:
        "nasflow text-prediction latency --config-json {params.config:q} --data {params.data:q}"
        " --pretrained {input.pretrained:q} --finetuned {input.finetuned:q}"
        " --out {output.csv:q} > {log:q} 2>&1"


rule text_prediction_tables:
    """Tables 2 and 3 of the text-prediction case study."""
    input:
        pretrained=expand(
            rules.text_prediction_pretrain.output.models,
            group=TP_GROUPS,
            allow_missing=True,
        ),
        baseline=path_of(
            rules.text_prediction_finetune.output.summary, exp=EXP, group="baseline"
        ),
        candidate=path_of(
            rules.text_prediction_finetune.output.summary, exp=EXP, group="candidates"
        ),
        dev_baseline=path_of(
            rules.text_prediction_suggest.output.dev, exp=EXP, group="baseline"
        ),
        test_baseline=path_of(
            rules.text_prediction_suggest.output.test, exp=EXP, group="baseline"
        ),
        dev_candidate=path_of(
            rules.text_prediction_suggest.output.dev, exp=EXP, group="candidates"
        ),
        test_candidate=path_of(
            rules.text_prediction_suggest.output.test, exp=EXP, group="candidates"
        ),
        latency=rules.text_prediction_latency.output.csv,
    output:
        table2="results/{exp}/text_prediction/table2.csv",
        table3="results/{exp}/text_prediction/table3.csv",
        tuning="results/{exp}/text_prediction/tuning.csv",
        tuning_json="results/{exp}/text_prediction/tuning.json",
        md=report(
            "results/{exp}/text_prediction/text_prediction.md",
            caption="../report/text_prediction.rst",
            category="LTS",
        ),
    log:
        "logs/{exp}/text_prediction_tables.log",
    benchmark:
        "benchmarks/{exp}/text_prediction_tables.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=per_attempt(30),
    params:
        config=job_config(*TP_SECTIONS),
        out=lambda wildcards, output: Path(output.table2).parent,
    shell:
        "nasflow text-prediction tables --config-json {params.config:q}"
        " --pretrained {input.pretrained:q} --finetuned-baseline {input.baseline:q}"
        " --finetuned-candidate {input.candidate:q} --dev-baseline {input.dev_baseline:q}"
        " --test-baseline {input.test_baseline:q} --dev-candidate {input.dev_candidate:q}"
        " --test-candidate {input.test_candidate:q} --latency {input.latency:q}"
        " --out {params.out:q} > {log:q} 2>&1"


rule text_prediction_inner_ratio:
    """The d_inner/d_model analysis at equal decoder parameters."""
    input:
        data=rules.text_prediction_data.output.manifest,
    output:
        csv="results/{exp}/text_prediction/inner_ratio/inner_ratio.csv",
        md="results/{exp}/text_prediction/inner_ratio/inner_ratio.md",
    log:
        "logs/{exp}/text_prediction_inner_ratio.log",
    benchmark:
        "benchmarks/{exp}/text_prediction_inner_ratio.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=memory(8000),
        runtime=lambda wildcards, attempt: estimate.text_prediction_minutes(
            config,
            "pretrain",
            2 * len(TP["inner_ratio"]["sizes"]),
            attempt,
        ),
    params:
        config=job_config(*TP_SECTIONS, "lts.baseline"),
        data=lambda wildcards, input: Path(input.data).parent,
        out=lambda wildcards, output: Path(output.csv).parent,
        state="state/{exp}/text_prediction/inner_ratio",
    shell:
        "nasflow text-prediction inner-ratio --config-json {params.config:q}"
        " --data {params.data:q} --out {params.out:q} --state-root {params.state:q}"
        " > {log:q} 2>&1"


rule text_prediction:
    """Stage target: the text-prediction case study."""
    input:
        text_prediction_targets(),
