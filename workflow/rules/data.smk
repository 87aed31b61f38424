# Corpus preparation: raw parallel text -> joint SentencePiece BPE -> encoded splits.
# With data.fetch, a WMT training corpus is first downloaded and cleaned into data.local_dir.

from nasflow.data.recipes import output_files

# What rule fetch_corpus writes into data.local_dir (and prepare_data then reads).
FETCHED = (
    output_files(config["data"]["corpus"], config["data"]["local_dir"])
    if config["data"]["fetch"]
    else {}
)


# Downloads a few GB from statmt.org (archives cached in data.cache_dir/wmt). Where compute
# nodes have no internet, run `nasflow data fetch-wmt` (same arguments) on a login node first.
if FETCHED:

    rule fetch_corpus:
        """Download and clean the WMT training corpus into data.local_dir."""
        output:
            **FETCHED,
        # Its outputs (in data.local_dir) have no {exp}, so its log and benchmark cannot either.
        log:
            f"logs/{EXP}/fetch_corpus.log",
        benchmark:
            f"benchmarks/{EXP}/fetch_corpus.tsv"
        conda:
            "../../envs/nasflow.yaml"
        resources:
            mem_mb=memory(16000),
            runtime=per_attempt(8 * 60),
        params:
            corpus=config["data"]["corpus"],
            cache=f"{config['data']['cache_dir']}/wmt",
            out=lambda wildcards, output: Path(output.recipe).parent,
        shell:
            "nasflow data fetch-wmt --corpus {params.corpus:q} --out {params.out:q}"
            " --cache {params.cache:q} > {log:q} 2>&1"


rule prepare_data:
    """Train the joint SentencePiece model and encode the train/valid/test splits."""
    input:
        **FETCHED,
    output:
        spm="results/{exp}/data/spm.model",
        train="results/{exp}/data/train.npz",
        valid="results/{exp}/data/valid.npz",
        test="results/{exp}/data/test.npz",
        manifest="results/{exp}/data/manifest.json",
    log:
        "logs/{exp}/prepare_data.log",
    benchmark:
        "benchmarks/{exp}/prepare_data.tsv"
    priority: 60
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=memory(4000),
        runtime=per_attempt(120),
    params:
        corpus=config["data"]["corpus"],
        src=config["data"]["source_lang"],
        tgt=config["data"]["target_lang"],
        source=config["data"]["source"],
        # `--local-dir DIR`, or nothing (each word quoted by `:q`).
        local_dir=(
            ["--local-dir", config["data"]["local_dir"]]
            if config["data"]["local_dir"]
            else []
        ),
        cache_dir=config["data"]["cache_dir"],
        train=config["data"]["splits"]["train"],
        valid=config["data"]["splits"]["valid"],
        test=config["data"]["splits"]["test"],
        vocab_size=config["data"]["vocab_size"],
        model_type=config["data"]["model_type"],
        coverage=config["data"]["character_coverage"],
        seed=config["seed"],
        out=lambda wildcards, output: Path(output.manifest).parent,
    shell:
        "nasflow data prepare --corpus {params.corpus:q}"
        " --source-lang {params.src:q} --target-lang {params.tgt:q}"
        " --train {params.train:q} --valid {params.valid:q} --test {params.test:q}"
        " --source {params.source:q} {params.local_dir:q}"
        " --cache {params.cache_dir:q} --vocab-size {params.vocab_size:q}"
        " --model-type {params.model_type:q} --character-coverage {params.coverage:q}"
        " --seed {params.seed:q} --threads {threads:q} --out {params.out:q}"
        " > {log:q} 2>&1"


STAGE_ARTIFACTS["data"] = lambda: outputs_of(rules.prepare_data, exp=EXP)


# Stage targets: `snakemake <stage>` builds one stage and what it needs (docs/reference.md, "Workflow targets").
# Each names every file its stage writes (`stage_artifacts`), the same files `rule all` names.
rule data:
    """Stage target: the prepared corpus."""
    input:
        stage_artifacts("data"),
