# Corpus preparation: raw parallel text -> joint SentencePiece BPE -> encoded splits.
# With data.fetch, a WMT training corpus is first downloaded and cleaned into data.local_dir.

from nasflow.data.wmt_recipe import output_files

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
        output:
            **FETCHED,
        log:
            f"logs/{EXP}/fetch_corpus.log",
        benchmark:
            f"benchmarks/{EXP}/fetch_corpus.tsv"
        conda:
            "../../envs/nasflow.yaml"
        resources:
            mem_mb=16000,
            runtime=8 * 60,
        params:
            corpus=config["data"]["corpus"],
            cache=f"{config['data']['cache_dir']}/wmt",
            out=lambda wildcards, output: Path(output.recipe).parent,
        shell:
            "nasflow data fetch-wmt --corpus {params.corpus} --out {params.out}"
            " --cache {params.cache} > {log} 2>&1"


rule prepare_data:
    input:
        **FETCHED,
    output:
        **data_files(),
    log:
        f"logs/{EXP}/prepare_data.log",
    benchmark:
        f"benchmarks/{EXP}/prepare_data.tsv"
    priority: 60
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        corpus=config["data"]["corpus"],
        src=config["data"]["source_lang"],
        tgt=config["data"]["target_lang"],
        source=config["data"]["source"],
        local_dir=(
            f"--local-dir {config['data']['local_dir']}"
            if config["data"]["local_dir"]
            else ""
        ),
        cache_dir=config["data"]["cache_dir"],
        splits=config["data"]["splits"],
        vocab_size=config["data"]["vocab_size"],
        model_type=config["data"]["model_type"],
        coverage=config["data"]["character_coverage"],
        seed=config["seed"],
        out=lambda wildcards, output: Path(output.manifest).parent,
    shell:
        "nasflow data prepare --corpus {params.corpus}"
        " --source-lang {params.src} --target-lang {params.tgt}"
        " --train {params.splits[train]} --valid {params.splits[valid]}"
        " --test {params.splits[test]} --source {params.source} {params.local_dir}"
        " --cache-dir {params.cache_dir} --vocab-size {params.vocab_size}"
        " --model-type {params.model_type} --character-coverage {params.coverage}"
        " --seed {params.seed} --threads {threads} --out {params.out} > {log} 2>&1"
