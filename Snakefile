# nasflow: hardware-aware neural architecture search for Transformers.
# Read from `rule all` downwards; each stage lives in workflow/rules/<stage>.smk and every rule
# calls one `nasflow` subcommand.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/supernet.smk"
include: "workflow/rules/latency.smk"
include: "workflow/rules/tfs.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/llm.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/lts.smk"
include: "workflow/rules/targets.smk"


rule all:
    default_target: True
    input:
        all_targets(),
