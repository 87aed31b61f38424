# Helpers of the final stage (rules in ../final.smk).

from nasflow.config.resolve import final_train_settings


def final_train_config():
    """run_config("train") for the searches' winners: the train section with
    search.final_train's overrides."""
    keys = ("experiment", "seed", "space", "threads", "model")
    settings = {key: config[key] for key in keys}
    settings["train"] = final_train_settings(config)
    return json.dumps(settings, sort_keys=True)


def final_artifacts():
    """Files of the final stage: each winner trained, scored and measured."""
    if not has_tfs_set():
        return []
    return search_run_outputs(rules.train_final, rules.score_final, rules.measure_final)
