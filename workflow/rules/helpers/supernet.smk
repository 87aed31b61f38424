# Helpers of the supernet stage (rules in ../supernet.smk).

SUPERNET = config["supernet"]
SUPERNET_KIND = SUPERNET["kind"]


def method_supernet(method):
    """The supernet kind a search method's supernet iterations use (its own, else
    supernet.kind)."""
    return SEARCH["methods"][method].get("supernet", SUPERNET_KIND)


def supernet_kinds():
    """The kinds trained by default: supernet.kind, supernet.compare, then the run methods' own."""
    kinds = [SUPERNET_KIND, *SUPERNET["compare"]]
    kinds += [method_supernet(method) for method in SEARCH["run"]]
    return list(dict.fromkeys(kinds))


def supernet_model(kind=SUPERNET_KIND):
    """The trained supernet of one kind (default: the experiment's)."""
    return path_of(rules.train_supernet.output.model, exp=EXP, kind=kind)


def supernet_section(kind):
    """The supernet section one training job of `kind` reads: `compare` dropped (adding a kind
    reruns no other) and, for hat, the mixture keys (they do not apply to it)."""
    mixture = ("experts", "router_hidden", "router_dropout")
    return {
        key: value
        for key, value in {**SUPERNET, "kind": kind}.items()
        if key != "compare" and not (kind == "hat" and key in mixture)
    }


def supernet_artifacts():
    """Files of the supernet stage: every kind's model and curve."""
    return [
        path
        for kind in supernet_kinds()
        for path in outputs_of(rules.train_supernet, exp=EXP, kind=kind)
    ]
