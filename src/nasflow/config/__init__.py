"""Experiment configs: the schema and its defaults (`schema`), resolution and validation
(`resolve`), typed settings sections (`sections`) and the `--config` options (`options`)."""
