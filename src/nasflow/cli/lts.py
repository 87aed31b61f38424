"""`nasflow lts params | space | proxy-check | text | search | case-study`.

- `params`: the decoder-parameter calculator (closed form, `nasflow.space.gpt_params`);
- `space`: a space's config, its achievable decoder-parameter range and optional samples;
- `proxy-check`: train K sampled decoders on PTB and rank-correlate parameters with perplexity;
- `text`: the latency protocol's tokenizer and held-out prompts (`nasflow.lts.text`);
- `search`, `case-study`: the Pareto search and the case study of the config's `lts` section.

`--space` takes a registered name (`lts-paper`, `text-prediction`, `lts-demo`) or a YAML/JSON
file holding a space mapping (see `LTSSpace.from_mapping`; a top-level `space:` key is unwrapped).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from nasflow.core.errors import ConfigError, NasflowError
from nasflow.core.flags import add_flag
from nasflow.report.lts_tables import case_study_markdown
from nasflow.space.files import looks_like_file, read_space_file
from nasflow.space.gpt import SPACES, GPTArch, LTSSpace, resolve_space
from nasflow.space.gpt_params import GPT2_POSITIONS, GPT2_VOCAB, format_count, param_summary

logger = logging.getLogger(__name__)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"{option} expects an integer or a comma list of integers, got {text!r}"
        ) from None
    if any(v < 1 for v in values):
        raise ConfigError(f"{option} values must be positive, got {text!r}")
    return values


def _per_layer(text: str, option: str, n_layer: int) -> tuple[int, ...]:
    values = _int_list(text, option)
    if len(values) == 1:
        return tuple(values) * n_layer
    if len(values) != n_layer:
        raise ConfigError(
            f"{option} has {len(values)} values but --n-layer is {n_layer} "
            "(give one value for all layers or one per layer)"
        )
    return tuple(values)


def load_space(value: str) -> LTSSpace:
    """A registered space name, or a YAML/JSON file with a space mapping."""
    if value in SPACES:
        return SPACES[value]
    if looks_like_file(value):
        data = read_space_file(value)
        try:
            return LTSSpace.from_mapping(data)
        except NasflowError as error:
            raise ConfigError(f"{value}: {error}") from None
    return resolve_space(value)  # unknown name: error listing the known ones


# ---- params ---------------------------------------------------------------------------------
def _cmd_params(args: argparse.Namespace) -> int:
    if args.n_layer < 1 or args.d_model < 1:
        raise ConfigError("--n-layer and --d-model must be positive")
    if args.vocab < 1 or args.n_positions < 1:
        raise ConfigError("--vocab and --n-positions must be positive")
    inner = _per_layer(args.d_inner, "--d-inner", args.n_layer)
    heads_given = args.n_head is not None
    heads = (
        _per_layer(args.n_head, "--n-head", args.n_layer) if heads_given else (1,) * args.n_layer
    )
    arch = GPTArch(args.n_layer, args.d_model, inner, heads)
    summary = param_summary(arch, args.vocab, args.n_positions, args.backbone)
    if not heads_given:
        summary["arch"]["n_head"] = None
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    label = arch.describe() if heads_given else arch.describe().rsplit(" h", 1)[0]
    print(f"architecture:       {label}")
    print(f"decoder parameters: {format_count(summary['decoder_params'])}")
    where = (
        f"tokens {args.vocab} x d_model {args.d_model}; relative positions, no table"
        if args.backbone == "transformer-xl"
        else f"tokens {args.vocab} + positions {args.n_positions}, x d_model {args.d_model}"
    )
    print(f"embedding params:   {format_count(summary['embedding_params'])} ({where}; head tied)")
    print(f"total parameters:   {format_count(summary['total_params'])}")
    if not heads_given:
        print("(n_head does not change the parameter count)")
    return 0


# ---- space ----------------------------------------------------------------------------------
def _cmd_space(args: argparse.Namespace) -> int:
    space = load_space(args.space)
    low, high = space.decoder_param_range()
    out: dict[str, Any] = {
        **space.to_mapping(),
        "fingerprint": space.fingerprint,
        "decoder_param_range": [low, high],
    }
    if args.sample:
        from nasflow.space.gpt_params import decoder_params

        archs = space.sample_unique(args.sample, seed=args.seed)
        out["samples"] = [
            {"id": a.id, "arch": a.to_dict(), "decoder_params": decoder_params(a, space.backbone)}
            for a in archs
        ]
    print(json.dumps(out, indent=2))
    return 0


# ---- proxy-check ----------------------------------------------------------------------------
def _cmd_proxy_check(args: argparse.Namespace) -> int:
    from nasflow.core.io import write_json_atomic
    from nasflow.data.ptb import load_corpus
    from nasflow.lts.proxy_check import proxy_check, write_csv

    space = load_space(args.space)
    corpus = load_corpus(args.corpus)
    logger.info(
        f"corpus {args.corpus}: vocab {corpus.vocab_size}, train {corpus.train.numel()} tokens, "
        f"valid {corpus.valid.numel()} ({corpus.valid_source})"
    )
    state = args.state or args.out.with_name(args.out.name + ".state.jsonl")
    count = {"i": 0}

    def report(row: dict[str, Any]) -> None:
        count["i"] += 1
        how = "resumed" if row["resumed"] else f"trained in {row['train_seconds']:.1f} s"
        logger.info(
            f"[{count['i']}/{args.k}] {row['id']} {row['label']}: decoder "
            f"{row['decoder_params']:,}, valid ppl {row['valid_ppl']:.2f} ({how})"
        )

    result = proxy_check(
        corpus,
        space,
        k=args.k,
        steps=args.steps,
        batch=args.batch,
        seq_len=args.seq_len,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        warmup=args.warmup,
        dropout=args.dropout,
        valid_tokens=args.valid_tokens,
        state_path=state,
        progress=report,
    )
    write_json_atomic(args.out, result)
    if args.csv:
        write_csv(args.csv, result["rows"])
    corr = result["correlations"]

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.3f}"

    logger.info(
        f"{args.out}: {corr['n']} archs ({result['trained']} trained, {result['resumed']} "
        f"resumed); vs -log(valid ppl): decoder params spearman "
        f"{fmt(corr['decoder_params']['spearman'])} kendall "
        f"{fmt(corr['decoder_params']['kendall'])}; total params spearman "
        f"{fmt(corr['total_params']['spearman'])} kendall {fmt(corr['total_params']['kendall'])}"
    )
    return 0


def _lts_section(args: argparse.Namespace) -> dict[str, Any]:
    from nasflow.config.options import read_config

    return dict(read_config(args)["lts"])


def _cmd_text(args: argparse.Namespace) -> int:
    from nasflow.lts.runner import build_text

    if args.vocab_size is not None and args.vocab_size < 2:
        raise ConfigError(f"--vocab-size must be >= 2, got {args.vocab_size}")
    # The config is read only for what the options leave out (the rule passes both).
    given = args.corpus is not None and args.vocab_size is not None
    text = build_text(
        {} if given else _lts_section(args), args.out_dir, args.corpus, args.vocab_size
    )
    info = text.info
    logger.info(
        f"{args.out_dir}: {text.vocab_size}-piece tokenizer trained on {info['corpus']} "
        f"({info['train_lines']} lines); held-out {info['heldout_source']}: "
        f"{info['heldout_chars']} characters / {text.tokens} tokens = "
        f"{text.chars_per_token:.3f} characters per token"
    )
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from nasflow.lts.runner import lts_search
    from nasflow.report.lts_plots import plot_outputs

    section = _lts_section(args)
    timing = lts_search(
        section,
        args.out_dir,
        args.state_dir,
        args.cache,
        state_root=args.state_root,
        text_dir=args.text,
        fresh=args.fresh,
        progress=logger.info,
    )
    plot_outputs(args.out_dir)
    logger.info(
        f"{args.out_dir}: frontier of {timing.get('frontier_size')} architectures, "
        f"{timing.get('measured')} measured, {timing.get('cache_hits')} from the cache, "
        f"{timing.get('wall_seconds', 0.0):.1f} s"
    )
    return 0


def _cmd_case_study(args: argparse.Namespace) -> int:
    from nasflow.core.io import atomic_path, write_text_atomic
    from nasflow.lts.runner import case_study

    study = case_study(
        _lts_section(args), args.frontier, args.cache, progress=logger.info, text_dir=args.text
    )
    with atomic_path(args.out) as tmp:
        study.table.round(4).to_csv(tmp, index=False)
    markdown = case_study_markdown(study)
    print(markdown, end="")
    if args.markdown:
        write_text_atomic(args.markdown, markdown)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nasflow lts {params,space,proxy-check,text,search,case-study}`."""
    group = subparsers.add_parser("lts", help="LTS: decoder-only LM search (GPT-2 spaces)")
    sub = group.add_subparsers(dest="lts_command", required=True, metavar="SUBCOMMAND")

    params = sub.add_parser(
        "params", help="decoder and total parameters of a GPT-2-style decoder (closed form)"
    )
    params.add_argument("--n-layer", type=int, required=True)
    params.add_argument("--d-model", type=int, required=True)
    params.add_argument(
        "--d-inner", required=True, help="one value, or a comma list with one value per layer"
    )
    params.add_argument(
        "--n-head", help="one value or a comma list per layer (checked, no effect on the count)"
    )
    params.add_argument("--vocab", type=int, default=GPT2_VOCAB, help="default: GPT-2's 50257")
    params.add_argument("--n-positions", type=int, default=GPT2_POSITIONS)
    params.add_argument(
        "--backbone", choices=("gpt2", "transformer-xl"), default="gpt2",
        help="decoder family (default gpt2)",
    )  # fmt: skip
    params.add_argument("--json", action="store_true", help="print a JSON object instead")
    params.set_defaults(func=_cmd_params)

    space = sub.add_parser("space", help="print a space's config, parameter range and samples")
    space.add_argument("--space", required=True, help=f"{', '.join(SPACES)} or a YAML/JSON file")
    add_flag(
        space,
        "--n",
        "--sample",
        dest="sample",
        type=int,
        default=0,
        help="also draw N distinct architectures",
    )
    space.add_argument("--seed", type=int, default=1)
    space.set_defaults(func=_cmd_space)

    check = sub.add_parser(
        "proxy-check",
        help="train K sampled decoders on PTB; Spearman/Kendall of parameters vs perplexity",
    )
    check.add_argument("--corpus", type=Path, required=True, help="folder with ptb.*.txt(.gz)")
    check.add_argument("--space", default="lts-demo", help="space name or YAML/JSON file")
    add_flag(check, "--n", "--k", dest="k", type=int, default=8, help="architectures to train")
    check.add_argument("--steps", type=int, default=300, help="optimizer steps per architecture")
    add_flag(check, "--batch-size", "--batch", dest="batch", type=int, default=16)
    check.add_argument("--seq-len", type=int, default=64)
    check.add_argument("--lr", type=float, default=1e-3)
    check.add_argument("--warmup", type=int, help="warm-up steps (default 10%% of --steps)")
    check.add_argument("--dropout", type=float, default=0.0)
    check.add_argument("--valid-tokens", type=int, help="score only the first N valid tokens")
    check.add_argument("--seed", type=int, default=1)
    check.add_argument("--device", default="cpu")
    check.add_argument("--threads", type=int, default=1)
    check.add_argument("--out", type=Path, required=True, help="result JSON")
    check.add_argument("--csv", type=Path, help="also write one CSV row per architecture")
    add_flag(
        check,
        "--state-file",
        "--state",
        dest="state",
        type=Path,
        help="resume state (jsonl; default: <out>.state.jsonl)",
    )
    check.set_defaults(func=_cmd_proxy_check)

    from nasflow.config.options import BASE_SECTIONS, add_config_options

    # The config sections the commands read (the rules pass the same slice to each).
    sections = (*BASE_SECTIONS, "lts")

    text_help = (
        "text set of `nasflow lts text` (default: build one from lts.text.corpus, else "
        "lts.proxy_check.corpus, else $NASFLOW_MIRROR/ptb)"
    )
    corpus_help = "PTB-layout folder or plain-text file (default: as for search --text)"
    text = sub.add_parser(
        "text", help="train the latency protocol's tokenizer; encode the held-out prompts"
    )
    add_config_options(text, sections=sections)
    add_flag(
        text,
        "--out",
        "--out-dir",
        dest="out_dir",
        type=Path,
        required=True,
        help="folder: spm.model, heldout.npz, ...",
    )
    text.add_argument("--corpus", type=Path, help=corpus_help)
    text.add_argument(
        "--vocab-size", type=int, help="tokenizer pieces (default: as lts.text.vocab_size)"
    )
    text.set_defaults(func=_cmd_text)

    search = sub.add_parser("search", help="Pareto search: decoder params vs latency and memory")
    add_config_options(search, sections=sections)
    add_flag(
        search,
        "--out",
        "--out-dir",
        dest="out_dir",
        type=Path,
        required=True,
        help="folder: frontier, history, plots",
    )
    state = search.add_mutually_exclusive_group()
    state.add_argument("--state-dir", type=Path, help="resumable search state")
    state.add_argument(
        "--state-root",
        type=Path,
        help="or: a root of resumable states, one subfolder per fingerprint of the lts section "
        "(changed settings start afresh; what the rule passes)",
    )
    search.add_argument(
        "--cache", type=Path, default=Path("resources/lts_measure_cache.sqlite"),
        help="measurement cache (SQLite)",
    )  # fmt: skip
    search.add_argument("--text", type=Path, help=text_help)
    search.add_argument("--fresh", action="store_true", help="discard a saved search state")
    search.set_defaults(func=_cmd_search)

    case = sub.add_parser("case-study", help="frontier candidates vs the baseline (latency/char)")
    add_config_options(case, sections=sections)
    case.add_argument("--frontier", type=Path, required=True, help="frontier.csv of the search")
    case.add_argument(
        "--cache", type=Path, default=Path("resources/lts_measure_cache.sqlite"),
        help="measurement cache (SQLite)",
    )  # fmt: skip
    case.add_argument("--out", type=Path, required=True, help="case-study CSV")
    case.add_argument("--markdown", type=Path, help="also write it as markdown")
    case.add_argument("--text", type=Path, help=text_help)
    case.set_defaults(func=_cmd_case_study)
