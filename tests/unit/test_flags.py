"""One flag name per concept in every `nasflow` subcommand; old names are hidden aliases."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from nasflow.cli import COMMANDS, build_parser, command_word, main
from nasflow.core.flags import ALIASES_ATTR, CANONICAL, visible_options
from nasflow.tfs.format import TaskListAction

# concept -> (canonical flag, names it had before: only allowed as hidden aliases)
CONCEPTS = {
    "output file or folder": ("--out", {"--out-dir", "--output"}),
    "resumable state folder": ("--state-dir", {"--state"}),
    "resumable state file": ("--state-file", {"--state"}),
    "how many architectures": ("--n", {"--size", "--k", "--sample", "--archs"}),
    "sequences per batch": ("--batch-size", {"--batch"}),
    "cache file or folder": ("--cache", {"--cache-dir"}),
}
# `--archs` stays the name of another concept in `distill dataset` (a file of architectures).
RETIRED = {alias for _, aliases in CONCEPTS.values() for alias in aliases} - {"--archs"}


def subcommands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command words, parser) of every leaf subcommand."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield " ".join(path), parser
    for action in actions:
        for name, sub in action.choices.items():
            yield from subcommands(sub, (*path, name))


LEAVES = list(subcommands(build_parser()))


def test_the_table_matches_the_library() -> None:
    assert {canonical: set(aliases) for canonical, aliases in CANONICAL.items()} == {
        canonical: aliases for canonical, aliases in CONCEPTS.values()
    }


@pytest.mark.parametrize(("command", "parser"), LEAVES, ids=[c for c, _ in LEAVES])
def test_each_concept_has_one_visible_name(command: str, parser: argparse.ArgumentParser) -> None:
    help_text = parser.format_help()
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        shown = visible_options(action)
        if isinstance(action, argparse.BooleanOptionalAction):  # --x and its negation --no-x
            shown = [name for name in shown if not name.startswith("--no-")]
        assert len(shown) == 1, f"{command}: {action.option_strings} shows several names"
        assert shown[0] not in RETIRED, f"{command}: {shown[0]} is a retired name"
        for alias in getattr(action, ALIASES_ATTR, ()):
            assert alias in CANONICAL[shown[0]], f"{command}: {alias} is no alias of {shown[0]}"
        if shown[0] == "--task" and action.nargs not in (None, "?"):  # several tasks: one way
            assert isinstance(action, TaskListAction) and action.nargs == "+", command
    for name in RETIRED:
        assert not re.search(rf"{re.escape(name)}\b(?!-)", help_text), f"{command}: {name}"


def test_deprecated_aliases_still_parse_and_warn(capsys) -> None:
    parser = build_parser()
    args = parser.parse_args(["lts", "proxy-check", "--corpus", "c", "--k", "3", "--batch", "2",
                              "--out", "o.json", "--state", "s.jsonl"])  # fmt: skip
    assert (args.k, args.batch, str(args.state)) == (3, 2, "s.jsonl")
    assert ("--k", "--n") in args.deprecated_flags and ("--state", "--state-file") in (
        args.deprecated_flags
    )
    new = parser.parse_args(["search", "tables", "--runs", "r", "--out", "t"])
    old = parser.parse_args(["search", "tables", "--runs", "r", "--out-dir", "t"])
    assert new.out_dir == old.out_dir and new.deprecated_flags == []
    assert main(["lts", "space", "--space", "lts-demo", "--sample", "2"]) == 0
    assert "WARNING nasflow.cli: --sample is deprecated: use --n" in capsys.readouterr().err
    assert main(["lts", "space", "--space", "lts-demo", "--n", "2"]) == 0
    assert "deprecated" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("words", "tasks"),
    [(["a", "b"], ["a", "b"]), (["a,b"], ["a", "b"]), (["a,b", "c"], ["a", "b", "c"]),
     (["all"], None)],
)  # fmt: skip
def test_task_lists_take_words_or_commas(words: list[str], tasks: list[str] | None) -> None:
    argv = ["zero-cost", "score", "--tfs-eval", "t", "--data", "d", "--out", "o", "--task"]
    assert build_parser().parse_args([*argv, *words]).task == tasks


@pytest.mark.parametrize("words", [["a", "a"], ["a,a"], ["all", "a"]])
def test_task_lists_refuse_repeats(words: list[str], capsys) -> None:
    argv = ["llm-pp", "evaluate", "--predictions", "p", "--task", *words]
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert "--task" in capsys.readouterr().err


def test_each_command_is_built_from_its_own_module_alone() -> None:
    """`COMMANDS` names the module of every command: a job's parser imports that module only,
    and it parses the job's arguments as the full parser does."""
    full = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(full.choices) == list(COMMANDS)
    for command in COMMANDS:
        alone = build_parser(command)
        (action,) = [a for a in alone._actions if isinstance(a, argparse._SubParsersAction)]
        assert command in action.choices
        siblings = [c for c, module in COMMANDS.items() if module == COMMANDS[command]]
        assert sorted(action.choices) == sorted(siblings)
    argv = ["--log-level", "WARNING", "lts", "proxy-check", "--corpus", "c", "--n", "3",
            "--out", "o.json"]  # fmt: skip
    assert command_word(argv) == "lts" and command_word(["--help"]) is None
    assert vars(build_parser("lts").parse_args(argv)) == vars(build_parser().parse_args(argv))
