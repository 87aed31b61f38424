# Helpers of the text_prediction stage (rules in ../text_prediction.smk).

from nasflow.text_prediction.sources import corpora, resolve_corpora

TP = config["text_prediction"]
# The config sections every text_prediction command reads (rules add `lts.<entry>` slices).
TP_SECTIONS = ("experiment", "seed", "threads", "text_prediction")
TP_GROUPS = ("baseline", "candidates")


wildcard_constraints:
    group="baseline|candidates",


def text_prediction_corpora():
    """(pretraining corpus, sentence-completion corpus); an error naming the config key when
    one is missing (only evaluated for requested jobs)."""
    return tuple(str(path) for path in corpora(TP, LTS, MIRROR))


def text_prediction_case_study(group):
    """The LTS case study the candidates come from (nothing for the baseline)."""
    if group == "baseline":
        return []
    return path_of(rules.lts_case_study.output.csv, exp=EXP)


def text_prediction_targets():
    """The stage's artifacts (the tables, and the d_inner/d_model analysis when enabled);
    nothing, with the reason, when disabled or a corpus is missing."""
    if not TP["enabled"]:
        return []
    pretrain, finetune = resolve_corpora(TP, LTS, MIRROR)
    if pretrain is None or finetune is None:
        print(
            "nasflow: skipping the text_prediction target: it needs a pretraining corpus "
            "(text_prediction.corpus or the LTS text corpus) and a sentence-completion corpus "
            "(text_prediction.finetune_corpus); or set NASFLOW_MIRROR (with ptb/, multi30k/)",
            file=sys.stderr,
        )
        return []
    targets = [
        *outputs_of(rules.text_prediction_data, exp=EXP),
        *outputs_of(rules.text_prediction_pretrain, exp=EXP, group=TP_GROUPS),
        *outputs_of(rules.text_prediction_finetune, exp=EXP, group=TP_GROUPS),
        *outputs_of(rules.text_prediction_suggest, exp=EXP, group=TP_GROUPS),
        *outputs_of(rules.text_prediction_latency, exp=EXP),
        *outputs_of(rules.text_prediction_tables, exp=EXP),
    ]
    if TP["inner_ratio"]["enabled"]:
        targets += outputs_of(rules.text_prediction_inner_ratio, exp=EXP)
    return targets
