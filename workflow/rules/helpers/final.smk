# Helpers of the final stage (rules in ../final.smk).

from nasflow.config.resolve import final_train_settings


def final_train_config():
    """`--config-json` of `nasflow arch train` for the searches' winners: the train section
    with search.final_train's overrides."""
    return job_config(*BASE_SECTIONS, train=final_train_settings(config))


def final_artifacts():
    """Files of the final stage: each winner trained, scored and measured."""
    if not has_tfs_set():
        return []
    return search_run_outputs(rules.train_final, rules.score_final, rules.measure_final)
