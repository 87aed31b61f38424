# Helpers of the lts stage (rules in ../lts.smk).

from nasflow.lts.text import resolve_text_corpus


def lts_measure_threads():
    """Cores an LTS measurement job reserves (see measurement_cores)."""
    return measurement_cores(LTS["measure"].get("threads", 1))


def lts_proxy_corpus():
    """The Penn Treebank folder of the proxy check (`lts.proxy_check.corpus` or the mirror's)."""
    corpus = LTS["proxy_check"].get("corpus")
    if corpus:
        return corpus
    return str(Path(MIRROR) / "ptb") if MIRROR else None


def lts_targets():
    """The LTS chain: text set, search, case study, and the proxy check when PTB is available;
    nothing (with the reason) without a text corpus."""
    if resolve_text_corpus(LTS) is None:
        print(
            "nasflow: skipping the LTS chain: its latency per character needs a text corpus: "
            "set NASFLOW_MIRROR (with ptb/), lts.text.corpus or lts.proxy_check.corpus",
            file=sys.stderr,
        )
        return []
    targets = [
        *outputs_of(rules.lts_text, exp=EXP),
        *outputs_of(rules.lts_search, exp=EXP),
        *outputs_of(rules.lts_case_study, exp=EXP),
    ]
    if LTS["proxy_check"].get("enabled", True):
        if lts_proxy_corpus() is not None:
            targets += outputs_of(rules.lts_proxy_check, exp=EXP)
        else:
            print(
                "nasflow: skipping the LTS proxy check: set NASFLOW_MIRROR (with ptb/) or "
                "lts.proxy_check.corpus",
                file=sys.stderr,
            )
    return targets
