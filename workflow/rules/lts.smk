# LTS: training-free search for decoder-only LMs on the target device (results/{experiment}/lts/):
# the latency protocol's text set (tokenizer and held-out prompts), the Pareto search (decoder
# parameters vs measured latency and peak memory), the case study against the baseline, and the
# proxy check on Penn Treebank.


from nasflow.lts.text import text_corpus


rule lts_text:
    """The LTS latency protocol's text set (tokenizer, held-out prompts)."""
    input:
        # The plain-text corpus (lts.text.corpus, else lts.proxy_check.corpus, else
        # $NASFLOW_MIRROR/ptb), resolved only when an LTS job is requested: without one the run
        # stops before any job starts, with an error naming the config key.
        corpus=lambda wildcards: str(text_corpus(config["lts"])),
    output:
        model="results/{exp}/lts/text/spm.model",
        heldout="results/{exp}/lts/text/heldout.npz",
        manifest="results/{exp}/lts/text/text.json",
    log:
        "logs/{exp}/lts_text.log",
    benchmark:
        "benchmarks/{exp}/lts_text.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=per_attempt(30),
    params:
        config=job_config(*BASE_SECTIONS, "lts"),
        out=lambda wildcards, output: Path(output.manifest).parent,
    shell:
        "nasflow lts text --config-json {params.config:q} --corpus {input.corpus:q}"
        " --out {params.out:q} > {log:q} 2>&1"


rule lts_search:
    """LTS Pareto search: decoder parameters vs measured latency and memory."""
    input:
        text=rules.lts_text.output.manifest,
    output:
        frontier="results/{exp}/lts/search/frontier.csv",
        all="results/{exp}/lts/search/all.csv",
        history="results/{exp}/lts/search/history.csv",
        timing="results/{exp}/lts/search/timing.json",
        plot=report(
            "results/{exp}/lts/search/frontier_evolution.png",
            caption="../report/lts_frontier.rst",
            category="LTS",
        ),
    log:
        "logs/{exp}/lts_search.log",
    benchmark:
        "benchmarks/{exp}/lts_search.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: lambda wildcards: lts_measure_threads()
    resources:
        **slurm_placement(LTS["slurm"]),
        mem_mb=memory(8000),
        runtime=lambda wildcards, attempt: estimate.lts_search_minutes(LTS, attempt),
    params:
        config=job_config(*BASE_SECTIONS, "lts"),
        out=lambda wildcards, output: Path(output.frontier).parent,
        # The root: `nasflow lts search` keeps its state in a subfolder per settings.
        state="state/{exp}/lts/search",
        cache=config["lts"]["cache"],
        text=lambda wildcards, input: Path(input.text).parent,
    shell:
        "nasflow lts search --config-json {params.config:q} --out {params.out:q}"
        " --state-root {params.state:q} --cache {params.cache:q} --text {params.text:q}"
        " > {log:q} 2>&1"


rule lts_case_study:
    """LTS case study: frontier candidates against the baseline, measured."""
    input:
        frontier=rules.lts_search.output.frontier,
        text=rules.lts_text.output.manifest,
    output:
        csv="results/{exp}/lts/case_study.csv",
        md=report(
            "results/{exp}/lts/case_study.md",
            caption="../report/lts_case_study.rst",
            category="LTS",
        ),
    log:
        "logs/{exp}/lts_case_study.log",
    benchmark:
        "benchmarks/{exp}/lts_case_study.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: lambda wildcards: lts_measure_threads()
    resources:
        **slurm_placement(LTS["slurm"]),
        mem_mb=memory(8000),
        runtime=lambda wildcards, attempt: estimate.lts_case_study_minutes(LTS, attempt),
    params:
        config=job_config(*BASE_SECTIONS, "lts"),
        cache=config["lts"]["cache"],
        text=lambda wildcards, input: Path(input.text).parent,
    shell:
        "nasflow lts case-study --config-json {params.config:q} --frontier {input.frontier:q}"
        " --cache {params.cache:q} --text {params.text:q} --out {output.csv:q}"
        " --markdown {output.md:q} > {log:q} 2>&1"


rule lts_proxy_check:
    """LTS proxy check: decoder parameters vs Penn Treebank perplexity."""
    input:
        corpus=lts_proxy_corpus() or [],
    output:
        json="results/{exp}/lts/proxy_check.json",
        csv="results/{exp}/lts/proxy_check.csv",
    log:
        "logs/{exp}/lts_proxy_check.log",
    benchmark:
        "benchmarks/{exp}/lts_proxy_check.tsv"
    conda:
        "../../envs/nasflow.yaml"
    threads: config["threads"]
    resources:
        mem_mb=memory(8000),
        runtime=lambda wildcards, attempt: estimate.proxy_check_minutes(config, attempt),
    params:
        check=config["lts"]["proxy_check"],
        state="state/{exp}/lts/proxy_check.jsonl",
    shell:
        "nasflow lts proxy-check --corpus {input.corpus:q} --space {params.check[space]:q}"
        " --n {params.check[k]:q} --steps {params.check[steps]:q} --batch-size {params.check[batch]:q}"
        " --seq-len {params.check[seq_len]:q} --lr {params.check[lr]:q} --threads {threads:q}"
        " --state-file {params.state:q} --out {output.json:q} --csv {output.csv:q} > {log:q} 2>&1"


rule lts:
    """Stage target: the LTS chain."""
    input:
        lts_targets(),
