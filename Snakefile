# nasflow: hardware-aware neural architecture search for Transformers.
# Read from `rule all` downwards; each stage lives in workflow/rules/<stage>.smk and every rule
# calls one `nasflow` subcommand.

from snakemake.utils import min_version

from nasflow.config.resolve import resolve_config

min_version("9.0")

# `--configfile X` runs X plus the schema's defaults, nothing else: config/config.yaml is the
# default only when no config file is given. `nasflow config show` resolves the same way, and a
# bad key fails here, before any job runs.
config.update(
    resolve_config(
        workflow.config_settings.configfiles, workflow.config_settings.config
    )
)


include: "workflow/rules/common.smk"


# Only the chains the config enables (`chains`) have rules. Stages in order: a rule may name
# another's outputs (`rules.<name>.output`) only once it is defined; each stage file ends with its
# stage target (`snakemake <stage>`).
if "hsnas" in config["chains"]:

    include: "workflow/rules/data.smk"
    include: "workflow/rules/supernet.smk"
    include: "workflow/rules/latency.smk"
    include: "workflow/rules/tfs.smk"
    include: "workflow/rules/zero_cost.smk"
    include: "workflow/rules/paper.smk"
    include: "workflow/rules/llm_pp.smk"
    include: "workflow/rules/distill.smk"
    include: "workflow/rules/search.smk"
    include: "workflow/rules/final.smk"
    include: "workflow/rules/tables.smk"


if "lts" in config["chains"]:

    include: "workflow/rules/lts.smk"
    include: "workflow/rules/text_prediction.smk"


include: "workflow/rules/report.smk"


# The report's landing page (`snakemake --report`): what ran and the results page.
report: "workflow/report/workflow.rst"


rule all:
    """Everything the config's chains build (each stage's artifacts)."""
    default_target: True
    input:
        all_targets(),
