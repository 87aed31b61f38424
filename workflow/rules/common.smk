# Shared helpers: config validation (at parse time), paths and targets.

import os
import sys
from pathlib import Path

from nasflow.config import resolve_tfs_eval_dir, validate_config

# Fails before any job runs, naming the bad key (same schema as `nasflow config validate`).
validate_config(config, source="config (config/config.yaml plus --config overrides)")

EXP = config["experiment"]
MIRROR = os.environ.get("NASFLOW_MIRROR")
TFS_EVAL_DIR = resolve_tfs_eval_dir(config, MIRROR)


def data_files():
    """The prepared corpus of this experiment."""
    out = f"results/{EXP}/data"
    return {
        "spm": f"{out}/spm.model",
        "train": f"{out}/train.npz",
        "valid": f"{out}/valid.npz",
        "test": f"{out}/test.npz",
        "manifest": f"{out}/manifest.json",
    }


def all_targets():
    """Everything `rule all` builds for this config."""
    targets = list(data_files().values())
    if config["paper"]["enabled"]:
        if TFS_EVAL_DIR is not None:
            targets += rules.table1_baselines.output
        else:
            print(
                "nasflow: skipping the paper tables: set NASFLOW_MIRROR or paper.tfs_eval_dir "
                "to the released TFS-Eval folder (llmas/train-test_seedarchs)",
                file=sys.stderr,
            )
    return targets
