# Helpers of the tfs stage (rules in ../tfs.smk).


def tfs_scores():
    """Score files of every TFS-Eval architecture."""
    return expand(rules.score_arch.output.scores, exp=EXP, arch_id=list(TFS_ARCHS))


def tfs_artifacts():
    """Files of the tfs stage: each architecture's model and scores, and the set (from two)."""
    files = [
        path
        for arch_id in TFS_ARCHS
        for writer in (rules.train_arch, rules.score_arch)
        for path in outputs_of(writer, exp=EXP, arch_id=arch_id)
    ]
    return files + (outputs_of(rules.tfs_eval, exp=EXP) if has_tfs_set() else [])
