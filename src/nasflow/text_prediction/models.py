"""Which decoders the case study trains, and their names.

- Group `baseline`: the baseline of `lts.baseline` (the paper's 12-layer GPT-2), named `baseline`.
- Group `candidates`: the LTS case study's rows (`case_study.csv`, written by `nasflow lts
  case-study`: frontier candidates slightly above the baseline's decoder parameters, each
  followed by its `n_head` variants), named as the case study's Table 1 does: `C1`, `C2`, ...
  for the candidates in the case study's order (lowest latency first) and `C1-h8`, `C1-h16`, ...
  for their variants.
- The d_inner/d_model pairs (`inner_ratio_pairs`): for each size (a multiple of the baseline's
  decoder parameters) one decoder with `d_inner = ratios[0] * d_model` and one with
  `ratios[1] * d_model`, both with the baseline's layers and heads and the `d_model` (a multiple
  of 8 * n_head) whose decoder parameters come closest to the size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nasflow.core.errors import ConfigError, DataError
from nasflow.lts.runner import baseline_arch
from nasflow.space.gpt import GPTArch
from nasflow.space.gpt_params import decoder_params

__all__ = [
    "GROUPS",
    "ModelSpec",
    "baseline_arch",
    "candidate_specs",
    "check_group",
    "group_specs",
    "inner_ratio_pairs",
    "read_models",
]

GROUPS = ("baseline", "candidates")


@dataclass(frozen=True)
class ModelSpec:
    """One decoder the stage trains: its name in the tables, its role and architecture."""

    name: str
    role: str
    arch: GPTArch

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "arch": self.arch.to_dict(),
            "label": self.arch.describe(),
            "decoder_params": decoder_params(self.arch),
        }


def check_group(group: str) -> str:
    if group not in GROUPS:
        raise ConfigError(f"model group must be one of {', '.join(GROUPS)}, got {group!r}")
    return group


def candidate_specs(case_study_csv: str | Path) -> list[ModelSpec]:
    """The case study's candidates and their head variants, named `C<k>` and `C<k>-h<n>`."""
    path = Path(case_study_csv)
    if not path.is_file():
        raise DataError(f"{path}: case study not found (run `nasflow lts case-study` first)")
    table = pd.read_csv(path, dtype=str)
    missing = {"role", "n_layer", "d_model", "d_inner", "n_head"} - set(table.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    specs: list[ModelSpec] = []
    number = 0
    for line, row in enumerate(table.to_dict("records"), start=2):
        role = str(row["role"])
        if role == "baseline":
            continue
        try:
            arch = _arch_of(row)
        except (ValueError, TypeError) as error:
            raise DataError(f"{path}:{line}: not an architecture ({error})") from None
        if role == "candidate":
            number += 1
            specs.append(ModelSpec(f"C{number}", role, arch))
        elif role.startswith("candidate n_head=") and number:
            specs.append(ModelSpec(f"C{number}-h{arch.n_head[0]}", role, arch))
        else:
            raise DataError(f"{path}:{line}: unknown role {role!r}")
    return specs


def _arch_of(row: Mapping[str, Any]) -> GPTArch:
    def per_layer(text: Any) -> tuple[int, ...] | int:
        values = [int(v) for v in str(text).split(",")]
        return values[0] if len(values) == 1 else tuple(values)

    return GPTArch(
        int(row["n_layer"]),
        int(row["d_model"]),
        per_layer(row["d_inner"]),
        per_layer(row["n_head"]),
    )


def group_specs(
    group: str, lts: Mapping[str, Any], case_study_csv: str | Path | None = None
) -> list[ModelSpec]:
    """The decoders of one group (see the module docstring)."""
    if check_group(group) == "baseline":
        return [ModelSpec("baseline", "baseline", baseline_arch(lts))]
    if case_study_csv is None:
        raise ConfigError("the candidates group needs the case study's CSV (--case-study)")
    specs = candidate_specs(case_study_csv)
    if not specs:
        raise DataError(
            f"{case_study_csv}: the case study selected no candidate (no frontier point within "
            "config key lts.selection.margin above the baseline's decoder parameters)"
        )
    return specs


def inner_ratio_pairs(
    baseline: GPTArch, ratios: Sequence[float], sizes: Sequence[float]
) -> list[ModelSpec]:
    """For each size, a decoder at `ratios[0]` and one at `ratios[1]` (see the module docstring),
    named `r<ratio>-s<size>`."""
    low, high = (float(r) for r in ratios)
    if not low < 2.0 <= high:
        raise ConfigError(
            f"config key text_prediction.inner_ratio.ratios must be [< 2, >= 2], got {list(ratios)}"
        )
    heads = baseline.n_head[0]
    step = 8 * heads
    budget_of = decoder_params(baseline)
    specs: list[ModelSpec] = []
    for size in sizes:
        budget = float(size) * budget_of
        for ratio in (low, high):
            best: GPTArch | None = None
            for d_model in range(step, 64 * step + 1, step):
                d_inner = max(1, round(ratio * d_model))
                arch = GPTArch.uniform(baseline.n_layer, d_model, d_inner, heads)
                if best is None or abs(decoder_params(arch) - budget) < abs(
                    decoder_params(best) - budget
                ):
                    best = arch
            assert best is not None
            specs.append(
                ModelSpec(f"r{ratio:g}-s{float(size):g}", f"d_inner/d_model {ratio:g}", best)
            )
    return specs


def read_models(path: str | Path) -> list[dict[str, Any]]:
    """The `models` of a group's `models.json` (written by `write_models`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        models = data["models"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"{path}: not a models file of the text-prediction stage ({error})"
        ) from None
    if not isinstance(models, list) or not models:
        raise DataError(f"{path}: lists no model")
    return models
