"""Where the stage's two corpora come from, resolved from the config (errors name the key).

- Pretraining: `text_prediction.corpus`, else the LTS chain's text corpus
  (`nasflow.lts.text.resolve_text_corpus`: `lts.text.corpus`, `lts.proxy_check.corpus`,
  `$NASFLOW_MIRROR/ptb`).
- Sentence completion: `text_prediction.finetune_corpus`, else `$NASFLOW_MIRROR/multi30k`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nasflow.core.errors import ConfigError
from nasflow.lts.text import resolve_text_corpus


def resolve_corpora(
    section: Mapping[str, Any], lts: Mapping[str, Any], mirror: str | None = None
) -> tuple[str | None, str | None]:
    """(pretraining corpus, sentence-completion corpus) as configured; None where unset."""
    mirror = os.environ.get("NASFLOW_MIRROR") if mirror is None else mirror
    pretrain = section.get("corpus") or resolve_text_corpus(lts, mirror)
    finetune = section.get("finetune_corpus") or (
        str(Path(mirror) / "multi30k") if mirror else None
    )
    return (None if pretrain is None else str(pretrain)), finetune


def corpora(
    section: Mapping[str, Any], lts: Mapping[str, Any], mirror: str | None = None
) -> tuple[Path, Path]:
    """Both corpora, which must exist; a `ConfigError` naming the key otherwise."""
    pretrain, finetune = resolve_corpora(section, lts, mirror)
    found = []
    for value, key in (
        (pretrain, "text_prediction.corpus"),
        (finetune, "text_prediction.finetune_corpus"),
    ):
        if value is None:
            raise ConfigError(
                f"config key {key}: no corpus (set it, or NASFLOW_MIRROR to the data mirror)"
            )
        if not Path(value).exists():
            raise ConfigError(f"config key {key}: {value} not found")
        found.append(Path(value))
    return found[0], found[1]
