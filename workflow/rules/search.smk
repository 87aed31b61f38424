# The paper's search chain: LLM-Distill-PP (architectures labelled by LLM-PP, an MLP per TFS-Eval
# split seed), evolutionary searches (HAT, HS-NAS and the configured others) under each
# constraint, the winners trained from scratch and scored (BLEU, measured latency, GFLOPs, size),
# then the paper's tables (3/4, 5, 16) and the convergence plot.


localrules:
    distill_dataset,


rule distill_dataset:
    input:
        tfs_eval=f"results/{EXP}/tfs_eval",
    output:
        csv=f"results/{EXP}/distill/{{llm}}/seed{{split}}/dataset.csv",
        usage=f"results/{EXP}/distill/{{llm}}/seed{{split}}/usage.json",
    log:
        f"logs/{EXP}/distill_dataset/{{llm}}-seed{{split}}.log",
    benchmark:
        f"benchmarks/{EXP}/distill_dataset/{{llm}}-seed{{split}}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    resources:
        llm=1,
        mem_mb=2000,
        runtime=24 * 60,
    params:
        options=lambda wildcards: llm_predict_args(wildcards.llm),
        archs=distill_archs_option(),
        variant=config["distill"]["variant"],
        k=DISTILL["demonstrations"],
        task=EXP,
    shell:
        "nasflow distill dataset --tfs-eval {input.tfs_eval:q} --task {params.task:q}"
        " --seed {wildcards.split:q} {params.archs:q} --variant {params.variant:q}"
        " --demonstrations {params.k:q} {params.options:q}"
        " --out {output.csv:q} --usage {output.usage:q} > {log:q} 2>&1"


rule distill_train:
    input:
        dataset=rules.distill_dataset.output.csv,
        tfs_eval=f"results/{EXP}/tfs_eval",
    output:
        model=f"results/{EXP}/distill/{{llm}}/seed{{split}}/model.pt",
        meta=f"results/{EXP}/distill/{{llm}}/seed{{split}}/model.json",
    log:
        f"logs/{EXP}/distill_train/{{llm}}-seed{{split}}.log",
    benchmark:
        f"benchmarks/{EXP}/distill_train/{{llm}}-seed{{split}}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        settings=json.dumps(config["distill"]["mlp"], sort_keys=True),
        name=lambda wildcards: distill_label(wildcards.llm),
        task=EXP,
    shell:
        "nasflow distill train --dataset {input.dataset:q} --settings-json {params.settings:q}"
        " --name {params.name:q} --tfs-eval {input.tfs_eval:q} --task {params.task:q}"
        " --seed {wildcards.split:q} --threads {threads:q} --out {output.model:q} > {log:q} 2>&1"


rule supernet_mlp_dataset:
    input:
        supernet=rules.train_supernet.output.model,
        manifest=data_files()["manifest"],
        valid=data_files()["valid"],
    output:
        f"results/{EXP}/distill/supernet/dataset.csv",
    log:
        f"logs/{EXP}/supernet_mlp_dataset.log",
    benchmark:
        f"benchmarks/{EXP}/supernet_mlp_dataset.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=uses_gpu("train"),
        mem_mb=8000,
        runtime=24 * 60,
    params:
        config=run_config("train", "evaluate", "tfs"),
        data=lambda wildcards, input: Path(input.manifest).parent,
        n=DISTILL["supernet_archs"],
    shell:
        "nasflow distill score-supernet --config-json {params.config:q}"
        " --supernet {input.supernet:q} --data {params.data:q} --n {params.n:q}"
        " --out {output:q} > {log:q} 2>&1"


rule supernet_mlp_train:
    input:
        rules.supernet_mlp_dataset.output,
    output:
        model=f"results/{EXP}/distill/supernet/model.pt",
        meta=f"results/{EXP}/distill/supernet/model.json",
    log:
        f"logs/{EXP}/supernet_mlp_train.log",
    benchmark:
        f"benchmarks/{EXP}/supernet_mlp_train.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        settings=json.dumps(config["distill"]["mlp"], sort_keys=True),
    shell:
        "nasflow distill train --dataset {input:q} --settings-json {params.settings:q}"
        " --name 'Distilled HAT (MLP on supernet scores)' --threads {threads:q}"
        " --out {output.model:q} > {log:q} 2>&1"


rule run_search:
    input:
        unpack(search_inputs),
    output:
        best=f"results/{EXP}/search/{{method}}/{{constraint}}/seed{{seed}}/best.json",
        arch=f"results/{EXP}/search/{{method}}/{{constraint}}/seed{{seed}}/best_arch.json",
        history=f"results/{EXP}/search/{{method}}/{{constraint}}/seed{{seed}}/history.csv",
        timing=f"results/{EXP}/search/{{method}}/{{constraint}}/seed{{seed}}/timing.json",
    log:
        f"logs/{EXP}/search/{{method}}-{{constraint}}-seed{{seed}}.log",
    benchmark:
        f"benchmarks/{EXP}/search/{{method}}-{{constraint}}-seed{{seed}}.tsv"
    priority: 30
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=uses_gpu("train"),
        mem_mb=8000,
        runtime=24 * 60,
    params:
        config=search_config,
        data=lambda wildcards, input: Path(input.manifest).parent,
        options=search_options,
        out=lambda wildcards, output: Path(output.best).parent,
        state=search_state,
    shell:
        "nasflow search run --config-json {params.config:q} --method {wildcards.method:q}"
        " --constraint {wildcards.constraint:q} --seed {wildcards.seed:q}"
        " --supernet {input.supernet:q} --data {params.data:q} {params.options:q}"
        " --out-dir {params.out:q} --state-dir {params.state:q} > {log:q} 2>&1"


rule train_final:
    input:
        arch=rules.run_search.output.arch,
        train=data_files()["train"],
        valid=data_files()["valid"],
        manifest=data_files()["manifest"],
    output:
        model=f"results/{EXP}/search/{{method}}/{{constraint}}/seed{{seed}}/final/model.pt",
        curve=f"results/{EXP}/search/{{method}}/{{constraint}}/seed{{seed}}/final/curve.csv",
    log:
        f"logs/{EXP}/train_final/{{method}}-{{constraint}}-seed{{seed}}.log",
    benchmark:
        f"benchmarks/{EXP}/train_final/{{method}}-{{constraint}}-seed{{seed}}.tsv"
    priority: 30
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        gpu=uses_gpu("train"),
        mem_mb=16000,
        runtime=2 * 24 * 60,
    params:
        config=final_train_config(),
        data=lambda wildcards, input: Path(input.manifest).parent,
        state=lambda wildcards: (
            f"state/{EXP}/final/{wildcards.method}/{wildcards.constraint}/seed{wildcards.seed}"
        ),
    shell:
        "nasflow arch train --config-json {params.config:q} --arch {input.arch:q}"
        " --data {params.data:q} --out {output.model:q} --curve {output.curve:q}"
        " --state-dir {params.state:q} --no-progress > {log:q} 2>&1"


rule score_final:
    input:
        model=rules.train_final.output.model,
        manifest=data_files()["manifest"],
        valid=data_files()["valid"],
        test=data_files()["test"],
    output:
        scores=f"results/{EXP}/search/{{method}}/{{constraint}}/seed{{seed}}/final/score.json",
        hypotheses=directory(
            f"results/{EXP}/search/{{method}}/{{constraint}}/seed{{seed}}/final/hypotheses"
        ),
    log:
        f"logs/{EXP}/score_final/{{method}}-{{constraint}}-seed{{seed}}.log",
    benchmark:
        f"benchmarks/{EXP}/score_final/{{method}}-{{constraint}}-seed{{seed}}.tsv"
    priority: 30
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
        "nasflow arch score --config-json {params.config:q} --model {input.model:q}"
        " --data {params.data:q} --out {output.scores:q} --hypotheses {output.hypotheses:q}"
        " > {log:q} 2>&1"


rule measure_final:
    input:
        model=rules.train_final.output.model,
        predictor=f"results/{EXP}/latency/{SEARCH_TARGET}/predictor/model.pt",
    output:
        f"results/{EXP}/search/{{method}}/{{constraint}}/seed{{seed}}/final/latency.json",
    log:
        f"logs/{EXP}/measure_final/{{method}}-{{constraint}}-seed{{seed}}.log",
    benchmark:
        f"benchmarks/{EXP}/measure_final/{{method}}-{{constraint}}-seed{{seed}}.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: lambda wildcards: measure_threads(SEARCH_TARGET)
    resources:
        gpu=target_uses_gpu(SEARCH_TARGET),
        mem_mb=4000,
        runtime=30,
    params:
        config=run_config("latency", "data"),
        target=SEARCH_TARGET,
    shell:
        "nasflow latency measure --config-json {params.config:q} --target {params.target:q}"
        " --model {input.model:q} --predictor {input.predictor:q} --out {output:q} > {log:q} 2>&1"


rule search_tables:
    input:
        runs=search_final_files(),
    output:
        results=f"results/{EXP}/tables/search/results.csv",
        table3=report(
            f"results/{EXP}/tables/search/table3.md",
            caption="../report/table3.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
        table5=report(
            f"results/{EXP}/tables/search/table5.md",
            caption="../report/table5.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
        table16=report(
            f"results/{EXP}/tables/search/table16.md",
            caption="../report/table16.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
        table12=report(
            f"results/{EXP}/tables/search/table12.md",
            caption="../report/table12.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
        table13=report(
            f"results/{EXP}/tables/search/table13.md",
            caption="../report/table13.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
        summary=f"results/{EXP}/tables/search/summary.json",
        plot=report(
            f"results/{EXP}/tables/search/convergence.png",
            caption="../report/convergence.rst",
            category="Search (Tables 3/4, 5, 16)",
        ),
    log:
        f"logs/{EXP}/search_tables.log",
    conda:
        "../../envs/nasflow.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        runs=search_run_dirs(),
        out=lambda wildcards, output: Path(output.results).parent,
    shell:
        "nasflow search tables --runs {params.runs:q} --out-dir {params.out:q} > {log:q} 2>&1"
