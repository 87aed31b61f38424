"""Config values never run as shell code (issue 17): every value a rule pastes into its shell
command is quoted, so paths with spaces, quotes, `$(...)` or backticks reach `nasflow` intact."""

from __future__ import annotations

import ast
import json
import os
import random
import re
import shlex
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nasflow.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.workflow


def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Snakemake from this virtualenv with the repository's Snakefile in `cwd`, no mirror."""
    env = {k: v for k, v in os.environ.items() if k != "NASFLOW_MIRROR"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    cmd = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(cwd)]
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def hostile(tmp_path: Path) -> str:
    """A suffix that runs `touch PWNED` (three ways) if it ever reaches a shell unquoted, with
    spaces and both kinds of quotes that break a command when unquoted."""
    pwned = tmp_path / "PWNED"
    return f' a\'b "c" $(touch {pwned}) `touch {pwned}`; touch {pwned};'


def shell_strings() -> dict[str, str]:
    """Rule name -> its `shell:` command template, read from workflow/rules/*.smk."""
    commands = {}
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = path.read_text()
        for match in re.finditer(r"^ *rule (\w+):\n(.*?)(?=^ *rule |\Z)", text, re.S | re.M):
            if "shell:" not in match.group(2):
                continue
            shell = re.search(r"^( +)shell:\n((?:\1 +\".*\"\n)+)", match.group(2), re.M)
            assert shell, f"rule {match.group(1)}: shell: is not a block of string literals"
            commands[match.group(1)] = ast.literal_eval(f"({shell.group(2)})")
    return commands


def test_every_field_of_every_shell_command_is_quoted():
    """`{x:q}` on every field (lists: each element), so no rule pastes a value raw; helpers
    give lists of words (`shell_args` in common.smk), never pre-joined command fragments."""
    commands = shell_strings()
    assert len(commands) >= 20, sorted(commands)
    for rule, command in commands.items():
        fields = [(name, spec) for _, name, spec, _ in string.Formatter().parse(command) if name]
        assert fields, rule
        unquoted = [name for name, spec in fields if not (spec or "").endswith("q")]
        assert not unquoted, f"rule {rule}: unquoted {unquoted} in {command!r}"


def planned_commands(stdout: str) -> dict[str, list[str]]:
    """Rule -> the shell commands of its jobs in a dry run (`-n -p`)."""
    commands: dict[str, list[str]] = {}
    rule = None
    for line in stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
        elif rule and line.startswith("Shell command:"):
            command = line.split(":", 1)[1].strip()
            if command != "None":  # a target rule (rule all)
                commands.setdefault(rule, []).append(command)
    return commands


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def nasflow_calls(commands: list[list[str]]) -> list[list[str]]:
    """The arguments of every `nasflow` call in split shell commands (up to a redirection or
    another shell operator)."""
    calls = []
    for words in commands:
        for start in [i for i, word in enumerate(words) if word == "nasflow"]:
            end = start + 1
            while end < len(words) and words[end] not in {">", "2>&1", "&&", "||", ";", "|"}:
                end += 1
            calls.append(words[start + 1 : end])
    return calls


def strings_in(value) -> list[str]:
    """The strings of a JSON value (itself when a string)."""
    if isinstance(value, dict):
        return [*value, *(text for item in value.values() for text in strings_in(item))]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    return [value] if isinstance(value, str) else []


def make_dir(path: Path, files: tuple[str, ...] = ()) -> str:
    path.mkdir(parents=True, exist_ok=True)
    for name in files:
        (path / name).write_text("hello world\n")
    return str(path)


def test_a_dry_run_passes_hostile_config_paths_intact(tmp_path):
    """Every free-form path or name in the config, with spaces, quotes and `$(touch PWNED)`:
    each printed command splits back into the values, and running the commands (with a stub
    `nasflow` that records its arguments) creates nothing."""
    bad = hostile(tmp_path)
    paths = tmp_path / "in"
    values = {
        "local_dir": str(paths / f"corpus{bad}"),  # written by fetch_corpus
        "cache_dir": str(paths / f"cache{bad}"),
        "train": f"train{bad}",
        "valid": f"valid{bad}",
        "test": f"test{bad}",
        "tfs_eval_dir": make_dir(paths / f"tfs eval{bad}"),
        "llm_cache": str(paths / f"llm{bad}.sqlite"),
        "template": str(paths / f"template{bad}.yaml"),
        "enfr": make_dir(paths / f"enfr{bad}", ("train.en", "train.fr")),
        "model": f"model{bad}",
        "base_url": f"http://localhost:1/v1{bad}",
        "archs_file": str(paths / f"archs{bad}.jsonl"),
        "lts_cache": str(paths / f"lts{bad}.sqlite"),
        "text": str(paths / f"text{bad}.txt"),
        "ptb": make_dir(paths / f"ptb{bad}", ("ptb.train.txt", "ptb.valid.txt")),
    }
    make_dir(Path(values["text"]).parent)
    Path(values["text"]).write_text("hello world\n" * 20)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["experiment"] = "t"
    config["data"].update(corpus="wmt14_en_de", fetch=True, local_dir=values["local_dir"],
                          cache_dir=values["cache_dir"],
                          splits={k: values[k] for k in ("train", "valid", "test")})  # fmt: skip
    config["paper"]["tfs_eval_dir"] = values["tfs_eval_dir"]
    config["llm"].update(
        cache=values["llm_cache"], template=values["template"],
        task_example_corpora={"wmt14ende": values["local_dir"], "wmt14enfr": values["enfr"]},
        predictors=[{"name": "offline", "provider": "offline"},
                    {"name": "remote", "provider": "openai", "model": values["model"],
                     "base_url": values["base_url"]}],
    )  # fmt: skip
    config["distill"]["archs_file"] = values["archs_file"]
    config["lts"].update(cache=values["lts_cache"], text={"corpus": values["text"]})
    config["lts"]["proxy_check"]["corpus"] = values["ptb"]
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(config))

    result = snakemake("-n", "-p", "--configfile", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    plan = planned_commands(result.stdout)
    words = {rule: [shlex.split(cmd) for cmd in cmds] for rule, cmds in plan.items()}

    parser = build_parser()
    assert len(nasflow_calls([w for cmds in words.values() for w in cmds])) > 20
    for rule, commands in words.items():  # the rules use the commands' canonical flags
        for argv in nasflow_calls(commands):
            args = parser.parse_args(argv)
            assert args.deprecated_flags == [], (rule, args.deprecated_flags)

    def each(rule: str) -> list[list[str]]:
        assert words.get(rule), (rule, sorted(words))
        return words[rule]

    for cmd in each("fetch_corpus"):
        assert option(cmd, "--out") == values["local_dir"]
        assert option(cmd, "--cache") == f"{values['cache_dir']}/wmt"
    for cmd in each("prepare_data"):
        assert option(cmd, "--local-dir") == values["local_dir"]
        assert option(cmd, "--cache") == values["cache_dir"]
        for split in ("train", "valid", "test"):
            assert option(cmd, f"--{split}") == values[split]
    for cmd in each("table1_baselines"):
        assert option(cmd, "--tfs-eval") == values["tfs_eval_dir"]
    remote = 0
    for rule in ("llm_pp_predict", "llm_pp_robustness_predict", "distill_dataset"):
        for cmd in each(rule):
            # The settings come in the one --config-json: the llm section with the entry --llm
            # names (and the distill entries of the dataset).
            settings = json.loads(option(cmd, "--config-json"))
            llm = settings["llm"]
            assert llm["cache"] == values["llm_cache"]
            assert llm["template"] == values["template"]
            (entry,) = llm["predictors"]
            assert entry["name"] == option(cmd, "--llm")
            if entry["provider"] == "openai":
                remote += 1
                assert entry["model"] == values["model"]
                assert entry["base_url"] == values["base_url"]
            if rule == "distill_dataset":
                assert settings["distill"]["archs_file"] == values["archs_file"]
            elif option(cmd, "--tfs-eval") == values["tfs_eval_dir"]:  # the released sets
                assert llm["task_example_corpora"] == {"wmt14ende": values["local_dir"],
                                                       "wmt14enfr": values["enfr"]}  # fmt: skip
    assert remote >= 2
    for cmd in each("table11"):
        assert option(cmd, "--tfs-eval") in (values["tfs_eval_dir"], "results/t/tfs_eval")
    for cmd in each("lts_text"):
        assert option(cmd, "--corpus") == values["text"]
    for rule in ("lts_search", "lts_case_study"):
        for cmd in each(rule):
            assert option(cmd, "--cache") == values["lts_cache"]
    for cmd in each("lts_proxy_check"):
        assert option(cmd, "--corpus") == values["ptb"]
    # Anywhere else the values appear (derived paths, lists, `--config-json`), they come back
    # whole.
    marker = bad.strip()
    for rule, commands in words.items():
        for cmd in commands:
            for word in cmd:
                for text in strings_in(json.loads(word) if word.startswith("{") else word):
                    assert "PWNED" not in text or marker in text, (rule, text)

    # The commands as the shell runs them: same words as shlex, and no code runs.
    stub = tmp_path / "stub"
    stub.mkdir()
    record = tmp_path / "argv.jsonl"
    (stub / "nasflow").write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"with open({str(record)!r}, 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    (stub / "nasflow").chmod(0o755)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {**os.environ, "PATH": f"{stub}{os.pathsep}{os.environ['PATH']}"}
    expected = []
    for commands in plan.values():
        for command in commands:
            cmd = shlex.split(command)
            log = Path(run_dir, cmd[cmd.index(">") + 1])
            log.parent.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(["bash", "-c", command], cwd=run_dir, env=env)
            assert done.returncode == 0, command
            expected.append(cmd[1 : cmd.index(">")])
    recorded = [json.loads(line) for line in record.read_text().splitlines()]
    assert recorded == expected
    assert not (tmp_path / "PWNED").exists()


def test_snakemake_data_runs_with_hostile_local_and_cache_dirs(tmp_path):
    """`snakemake data` on a tiny custom corpus in a folder whose name has a space, quotes and
    `$(touch PWNED)`, with such a cache folder: the data are prepared, PWNED never appears."""
    bad = hostile(tmp_path)
    corpus = tmp_path / f"corpus{bad}"
    corpus.mkdir(parents=True)
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 6))) for _ in range(50)]
    for split, n in (("train", 200), ("val", 20), ("test", 20)):
        for lang in ("en", "de"):
            lines = (" ".join(rng.choices(words, k=rng.randint(3, 10))) for _ in range(n))
            (corpus / f"{split}.{lang}").write_text("\n".join(lines) + "\n")
    cache = tmp_path / f"cache{bad}"
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["experiment"] = "t"
    config["chains"] = ["hsnas"]
    config["paper"]["enabled"] = False
    config["data"].update(corpus="custom", local_dir=str(corpus), cache_dir=str(cache),
                          vocab_size=100, splits={"train": "train", "valid": "val",
                                                  "test": "test"})  # fmt: skip
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("data", "--cores", "1", "--configfile", str(path), cwd=tmp_path)
    assert not (tmp_path / "PWNED").exists(), "a config value ran as shell code"
    log = tmp_path / "logs" / "t" / "prepare_data.log"
    details = log.read_text() if log.is_file() else ""
    assert result.returncode == 0, result.stderr[-3000:] + details
    data = tmp_path / "results" / "t" / "data"
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["vocab_size"] == 100
    for role in ("train", "valid", "test"):
        assert (data / f"{role}.npz").is_file()
    # Read from the folder the config names, not from a mangled path.
    assert manifest["splits"]["train"]["source"]["path"] == str(corpus / "train.en")
