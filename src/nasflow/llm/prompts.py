"""LLM-PP performance-prediction prompts: role, instructions, hyperparameters, demonstrations.

The wording lives in a YAML template (default `templates/pp_prompt.yaml`, user-editable); this
module assembles the components a variant asks for. The paper's ablation (Table 1) adds the
components in turn: `demos` (demonstrations only), `role_hparams` (+ role and hyperparameter
definitions), then `task`, `examples`, `backbone`, `efficiency` (instructions 1-4), and `full`
(all five instructions). Rendering is a pure function of its inputs; the task examples are drawn
with a seed (`sample_task_examples`, `nasflow.llm.examples`). The instructions are numbered here,
not in the template: a prompt without task examples leaves the examples instruction out and
numbers the others 1, 2, ... in order.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from nasflow.core.errors import ConfigError
from nasflow.llm.examples import sample_task_examples as sample_task_examples  # re-exported
from nasflow.space.hat import ARCH_INFO_KEYS, Arch

INSTRUCTIONS = ("task", "examples", "backbone", "efficiency", "concentrate")
VARIANTS: dict[str, tuple[str, ...]] = {
    "demos": (),
    "role_hparams": ("role", "hyperparameters"),
    "task": ("role", "hyperparameters", "task"),
    "examples": ("role", "hyperparameters", "task", "examples"),
    "backbone": ("role", "hyperparameters", "task", "examples", "backbone"),
    "efficiency": ("role", "hyperparameters", "task", "examples", "backbone", "efficiency"),
    "full": ("role", "hyperparameters", *INSTRUCTIONS),
}
"""Prompt variants of the ablation, each with the components it includes."""

DEFAULT_TEMPLATE = "pp_prompt.yaml"
GFLOPS_LABEL = "GFLOPS"


@dataclass(frozen=True)
class TaskInfo:
    """What the prompt says about the task."""

    dataset: str
    source_language: str
    target_language: str
    task_name: str = "machine translation"
    metric: str = "BLEU"


@dataclass(frozen=True)
class Demonstration:
    """An architecture with its GFLOPs and, for demonstrations, its from-scratch score."""

    arch: Arch
    gflops: float
    score: float | None = None


@dataclass(frozen=True)
class PromptTemplate:
    """The wording of every component (see `templates/pp_prompt.yaml`)."""

    role: str
    instructions: Mapping[str, str]
    hyperparameters_intro: str
    definitions: Mapping[str, str]
    demonstrations_intro: str
    example_pair: str
    source: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> PromptTemplate:
        """The template at `path`, or the packaged default; missing keys are named."""
        if path is None:
            text = resources.files("nasflow.llm").joinpath("templates", DEFAULT_TEMPLATE)
            source, raw = f"<packaged {DEFAULT_TEMPLATE}>", text.read_text(encoding="utf-8")
        else:
            source = str(path)
            try:
                raw = Path(path).read_text(encoding="utf-8")
            except OSError as error:
                raise ConfigError(f"prompt template {path}: {error.strerror}") from None
        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(f"prompt template {source}: invalid YAML ({error})") from None
        return cls.from_mapping(data, source)

    @classmethod
    def from_mapping(cls, data: Any, source: str) -> PromptTemplate:
        def need(mapping: Any, key: str, where: str) -> Any:
            if not isinstance(mapping, dict) or key not in mapping:
                raise ConfigError(f"prompt template {source}: missing key {where}{key}")
            return mapping[key]

        instructions = need(data, "instructions", "")
        hyper = need(data, "hyperparameters", "")
        definitions = need(hyper, "definitions", "hyperparameters.")
        return cls(
            role=str(need(data, "role", "")),
            instructions={k: str(need(instructions, k, "instructions.")) for k in INSTRUCTIONS},
            hyperparameters_intro=str(need(hyper, "intro", "hyperparameters.")),
            definitions={
                k: str(need(definitions, k, "hyperparameters.definitions.")) for k in ARCH_INFO_KEYS
            },
            demonstrations_intro=str(need(data, "demonstrations_intro", "")),
            example_pair=str(need(data, "example_pair", "")),
            source=source,
        )


def format_architecture(item: Demonstration) -> str:
    """The architecture's `arch_info` lines, GFLOPs, and its score (or an open `BLEU:`)."""
    lines = [*item.arch.to_arch_info(), f"{GFLOPS_LABEL}: {item.gflops:.1f}"]
    return "\n".join(lines)


def _fill(text: str, values: Mapping[str, Any], template: PromptTemplate) -> str:
    fields = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    unknown = sorted(fields - set(values))
    if unknown:
        raise ConfigError(
            f"prompt template {template.source}: unknown placeholder(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(values))}"
        )
    return text.format(**values)


def render_prompt(
    template: PromptTemplate,
    variant: str,
    task: TaskInfo,
    task_examples: Sequence[tuple[str, str]],
    demonstrations: Sequence[Demonstration],
    test: Demonstration,
) -> str:
    """The prompt of `variant`: its components, the demonstrations, then the test architecture.

    Without `task_examples` the examples instruction is dropped and the later ones renumbered."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown prompt variant {variant!r}; choose one of {list(VARIANTS)}")
    if any(demo.score is None for demo in demonstrations):
        raise ValueError("every demonstration needs a score")
    parts = VARIANTS[variant]
    examples = "\n\n".join(
        _fill(template.example_pair, {"index": i, "source": s, "target": t}, template)
        for i, (s, t) in enumerate(task_examples, start=1)
    )
    values = {
        "task_name": task.task_name,
        "metric": task.metric,
        "dataset": task.dataset,
        "source_language": task.source_language,
        "target_language": task.target_language,
        "task_examples": examples,
    }
    blocks: list[str] = []
    if "role" in parts:
        blocks.append(_fill(template.role, values, template))
    # No task examples: the instruction that introduces them is left out, not left empty.
    numbered = [
        key for key in INSTRUCTIONS if key in parts and (key != "examples" or task_examples)
    ]
    if numbered:
        lines = [
            f"{n}. {_fill(template.instructions[key], values, template)}"
            for n, key in enumerate(numbered, start=1)
        ]
        blocks.append("Instructions:\n" + "\n".join(lines))
    if "hyperparameters" in parts:
        definitions = [f"- {template.definitions[key]}" for key in ARCH_INFO_KEYS]
        blocks.append("\n".join([template.hyperparameters_intro, *definitions]))
    if parts:
        blocks.append(_fill(template.demonstrations_intro, values, template))
    for demo in demonstrations:
        blocks.append(f"{format_architecture(demo)}\n{task.metric}: {demo.score:.2f}")
    blocks.append(f"{format_architecture(test)}\n{task.metric}:")
    return "\n\n".join(blocks)
