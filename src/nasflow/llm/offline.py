"""The offline stand-in for an LLM: a nearest-neighbour estimate from the prompt's demonstrations.

It reads the prompt as an LLM would: every block of `arch_info` lines followed by `GFLOPS:` and a
score is a demonstration; the last block, with an open score, is the test architecture. The reply
is the inverse-distance-weighted mean score of the `k` nearest demonstrations in a feature space
of the hyperparameters (layer means) and GFLOPs, each feature scaled by its largest value in the
prompt. Deterministic; labelled "offline stand-in (no LLM)" wherever its numbers appear.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from nasflow.core.errors import NasflowError
from nasflow.llm.prompts import GFLOPS_LABEL
from nasflow.space.hat import ARCH_INFO_KEYS

LABEL = "offline stand-in (no LLM)"
_KEYS = {value: name for name, value in ARCH_INFO_KEYS.items()}
_LINE = re.compile(r"^\s*([a-z-]+):\s*(.*?)\s*$")


class PromptParseError(NasflowError):
    """The prompt holds no demonstrations or no open test architecture."""


@dataclass(frozen=True)
class ParsedArch:
    features: tuple[float, ...]
    score: float | None


def _features(values: dict[str, str], gflops: float) -> tuple[float, ...]:
    def mean(key: str) -> float:
        numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", values[key])]
        return sum(numbers) / len(numbers) if numbers else 0.0

    return (*(mean(name) for name in ARCH_INFO_KEYS), gflops)


def parse_prompt(prompt: str, metric: str = "BLEU") -> tuple[list[ParsedArch], ParsedArch]:
    """Demonstrations (with scores) and the test architecture (score None) of a PP prompt."""
    blocks: list[ParsedArch] = []
    values: dict[str, str] = {}
    gflops: float | None = None
    for line in prompt.splitlines():
        stripped = line.strip()
        match = _LINE.match(stripped)
        if match and match.group(1) in _KEYS:
            values[_KEYS[match.group(1)]] = match.group(2)
        elif stripped.startswith(f"{GFLOPS_LABEL}:"):
            gflops = float(stripped.split(":", 1)[1])
        elif stripped.startswith(f"{metric}:") and len(values) == len(ARCH_INFO_KEYS):
            if gflops is None:
                raise PromptParseError(f"an architecture in the prompt has no {GFLOPS_LABEL} line")
            text = stripped.split(":", 1)[1].strip()
            score = float(text) if text else None
            blocks.append(ParsedArch(_features(values, gflops), score))
            values, gflops = {}, None
    if not blocks or blocks[-1].score is not None:
        raise PromptParseError(
            f"the prompt does not end with an architecture and an open {metric}:"
        )
    demos = blocks[:-1]
    if not demos:
        raise PromptParseError("the prompt has no demonstrations to learn from")
    return demos, blocks[-1]


def nearest_neighbour_estimate(demos: list[ParsedArch], test: ParsedArch, k: int = 3) -> float:
    """Inverse-distance-weighted mean score of the `k` nearest demonstrations."""
    scale = [
        max(abs(d.features[i]) for d in [*demos, test]) or 1.0 for i in range(len(test.features))
    ]

    def distance(demo: ParsedArch) -> float:
        return math.sqrt(
            sum(
                ((a - b) / s) ** 2
                for a, b, s in zip(demo.features, test.features, scale, strict=True)
            )
        )

    ranked = sorted(demos, key=distance)[:k]
    weights = [1.0 / (distance(d) + 1e-6) for d in ranked]
    return sum(w * d.score for w, d in zip(weights, ranked, strict=True)) / sum(weights)  # type: ignore[operator]


def offline_reply(prompt: str, metric: str = "BLEU", k: int = 3) -> str:
    """What the stand-in answers to `prompt`: the estimate with two decimals."""
    demos, test = parse_prompt(prompt, metric)
    return f"{nearest_neighbour_estimate(demos, test, k):.2f}"
