"""LLM-PP prompts, the offline stand-in and reply parsing."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from nasflow.core.errors import ConfigError
from nasflow.efficiency.counts import count_flops
from nasflow.llm.offline import LABEL, PromptParseError, offline_reply, parse_prompt
from nasflow.llm.parsing import first_number, parse_prediction
from nasflow.llm.prompts import (
    VARIANTS,
    Demonstration,
    PromptTemplate,
    TaskInfo,
    render_prompt,
    sample_task_examples,
)
from nasflow.space.hat import get_space

TASK = TaskInfo(dataset="WMT'14", source_language="English", target_language="German")


def _demos(n: int, seed: int = 0) -> list[Demonstration]:
    space = get_space("hat-wmt")
    rng = random.Random(seed)
    archs = [space.sample(rng) for _ in range(n)]
    return [
        Demonstration(a, count_flops(a, 32768) / 1e9, 20.0 + i / 4) for i, a in enumerate(archs)
    ]


def _render(variant: str, demos=None, test=None, examples=None) -> str:
    demos = demos if demos is not None else _demos(4)
    test = test or Demonstration(get_space("hat-wmt").largest(), 3.04)
    examples = examples if examples is not None else [("A dog runs .", "Ein Hund rennt .")]
    return render_prompt(PromptTemplate.load(), variant, TASK, examples, demos, test)


def test_full_prompt_has_every_component_in_order() -> None:
    prompt = _render("full")
    role = prompt.index("You are a performance estimator for machine translation")
    steps = [prompt.index(f"\n{n}. ") for n in range(1, 6)]
    hyper = prompt.index("The architecture hyperparameters are:")
    demos = prompt.index("Example architectures with their efficiency and BLEU:")
    assert role < steps[0] < steps[-1] < hyper < demos
    assert "translating from English to German" in prompt
    assert "Input: A dog runs .\nOutput: Ein Hund rennt ." in prompt
    assert "Attention Is All You Need" in prompt and "GFLOPS" in prompt
    assert prompt.count("- decoder-") == 6  # six decoder hyperparameter definitions
    assert prompt.endswith("GFLOPS: 3.0\nBLEU:")


def test_demonstrations_are_formatted_like_llmas() -> None:
    demos = _demos(2)
    prompt = _render("demos", demos=demos)
    first = "\n".join(demos[0].arch.to_arch_info())
    assert prompt.startswith(first + f"\nGFLOPS: {demos[0].gflops:.1f}\nBLEU: 20.00\n\n")
    assert "BLEU: 20.25" in prompt and "You are" not in prompt and "Instructions" not in prompt


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_variant_adds_its_components(variant: str) -> None:
    prompt = _render(variant)
    parts = VARIANTS[variant]
    assert ("You are a performance estimator" in prompt) == ("role" in parts)
    assert ("hyperparameters are:" in prompt) == ("hyperparameters" in parts)
    instructions = [p for p in parts if p not in ("role", "hyperparameters")]
    for n in range(1, 6):
        assert (f"\n{n}. " in prompt) == (n <= len(instructions))
    assert ("Input: A dog runs ." in prompt) == ("examples" in parts)


def test_rendering_is_deterministic_and_task_examples_follow_the_seed() -> None:
    assert _render("full") == _render("full")
    sources = [f"s{i}" for i in range(50)]
    targets = [f"t{i}" for i in range(50)]
    one = sample_task_examples(sources, targets, 5, seed=1)
    assert one == sample_task_examples(sources, targets, 5, seed=1)
    assert one != sample_task_examples(sources, targets, 5, seed=2)
    assert [s for s, _ in one] == sorted((s for s, _ in one), key=lambda s: int(s[1:]))
    assert all(t == "t" + s[1:] for s, t in one)
    assert len(sample_task_examples(sources[:3], targets[:3], 5, seed=1)) == 3


def test_template_errors_name_the_key(tmp_path: Path) -> None:
    data = yaml.safe_load(
        (Path(__file__).parents[2] / "src/nasflow/llm/templates/pp_prompt.yaml").read_text()
    )
    del data["instructions"]["backbone"]
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"t.yaml: missing key instructions.backbone"):
        PromptTemplate.load(path)
    data = yaml.safe_load(
        (Path(__file__).parents[2] / "src/nasflow/llm/templates/pp_prompt.yaml").read_text()
    )
    data["role"] = "You estimate {metrc}."
    path.write_text(yaml.safe_dump(data))
    template = PromptTemplate.load(path)
    with pytest.raises(ConfigError, match=r"unknown placeholder\(s\) metrc"):
        render_prompt(template, "full", TASK, [], _demos(1), _demos(1)[0])
    with pytest.raises(ConfigError, match="unknown prompt variant 'all'"):
        _render("all")
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        PromptTemplate.load(tmp_path / "nope.yaml")


def test_offline_stand_in_reads_the_demonstrations() -> None:
    demos = _demos(6)
    exact = Demonstration(demos[3].arch, demos[3].gflops)
    assert offline_reply(_render("full", demos=demos, test=exact)) == f"{demos[3].score:.2f}"
    reply = offline_reply(_render("demos", demos=demos))
    assert reply == offline_reply(_render("full", demos=demos))  # the wording does not matter
    scores = [d.score for d in demos]
    assert min(scores) <= float(reply) <= max(scores)
    parsed, test = parse_prompt(_render("full", demos=demos))
    assert (
        len(parsed) == 6
        and test.score is None
        and parsed[0].features[-1] == pytest.approx(round(demos[0].gflops, 1))
    )
    assert "no LLM" in LABEL


def test_offline_stand_in_refuses_prompts_it_cannot_read() -> None:
    with pytest.raises(PromptParseError, match="no demonstrations"):
        offline_reply(_render("full", demos=[]))
    with pytest.raises(PromptParseError, match="open BLEU"):
        offline_reply("What is 2 + 2?")


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("26.4", 26.4),
        ("BLEU: 27.15", 27.15),
        ("I estimate the BLEU score to be about 25.9 for this model.", 25.9),
        (" -3", -3.0),
        ("no idea", None),
        ("", None),
    ],
)
def test_first_number(reply: str, value: float | None) -> None:
    assert first_number(reply) == value


def test_absurd_values_are_rejected() -> None:
    assert parse_prediction("27.5", 0, 100) == 27.5
    assert parse_prediction("2750", 0, 100) is None
    assert parse_prediction("-1", 0, 100) is None
    assert parse_prediction("many", 0, 100) is None
