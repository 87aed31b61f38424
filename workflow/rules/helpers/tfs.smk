# Helpers of the tfs stage (rules in ../tfs.smk).


def tfs_scores():
    """Score files of every TFS-Eval architecture."""
    return expand(rules.score_arch.output.scores, arch_id=list(TFS_ARCHS))


def tfs_artifacts():
    """Files of the tfs stage: each architecture's model and scores, and the set (from two)."""
    files = [
        path
        for arch_id in TFS_ARCHS
        for writer in (rules.train_arch, rules.score_arch)
        for path in outputs_of(writer, arch_id=arch_id)
    ]
    return files + (list(rules.tfs_eval.output) if has_tfs_set() else [])
