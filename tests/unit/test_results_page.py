"""The results page: built from small synthetic result files, its tables and plots checked in
the HTML and, where Chromium is installed, in the rendered DOM."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from nasflow.cli import main
from nasflow.core.errors import DataError
from nasflow.report.render_check import RenderError, check_report, find_chromium, results_content
from nasflow.report.results_page import (
    PageInputs,
    arch_columns,
    build_page,
    parse_pairs,
    readable_label,
)
from nasflow.space.hat import get_space

SPACE = get_space("demo")
needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="no Chromium on this machine (apt-get install chromium)"
)


def _curve(path: Path, start: float) -> Path:
    rows = [
        {"update": u, "train_loss": start - u / 100,
         "valid_loss": start - u / 90 if u % 50 == 0 else None}
        for u in range(10, 110, 10)
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_run(root: Path, method: str, seed: int, bleu: float, latency: float) -> Path:
    """A search run folder as `nasflow search run`, `arch score` and `latency measure` write it."""
    folder = root / method / "latency-8ms" / f"seed{seed}"
    (folder / "final").mkdir(parents=True)
    archs = SPACE.sample_unique(6, seed=seed)
    best = archs[0]
    record = {
        "arch_id": best.id, "arch": best.to_dict(), "score": -3.0, "predictor": "supernet",
        "method": method, "constraint": "latency-8ms", "seed": seed, "protocol": "reference",
        "schedule": {"iterations": 2, "default": "supernet", "segments": []},
        "gflops": 0.09, "params_m": 0.87, "params_total_m": 2.1, "predicted_latency_ms": 5.9,
        "constraint_limits": {"latency_ms": 8},
    }  # fmt: skip
    (folder / "best.json").write_text(json.dumps(record))
    timing = {"search_seconds": 90.0, "predictor_seconds": {"supernet": 80.0}, "scored": {}}
    (folder / "timing.json").write_text(json.dumps(timing))
    history = [{"iteration": i, "predictor": "supernet", "best_score": -3.0} for i in (1, 2)]
    pd.DataFrame(history).to_csv(folder / "history.csv", index=False)
    scored = [
        {"iteration": i, "predictor": "supernet", "arch_id": a.id, "score": -3.0 - k / 10,
         "arch": a.to_json(), "predicted_latency_ms": 4.0 + k}
        for i in (1, 2) for k, a in enumerate(archs)
    ]  # fmt: skip
    pd.DataFrame(scored).to_csv(folder / "scored.csv", index=False)
    score = {"arch_id": best.id, "test": {"bleu": bleu}, "valid": {"bleu": bleu + 0.5}}
    (folder / "final" / "score.json").write_text(json.dumps(score))
    measured = {"arch_id": best.id, "total_ms": latency, "encoder_std_ms": 0.1}
    (folder / "final" / "latency.json").write_text(json.dumps(measured))
    _curve(folder / "final" / "curve.csv", 12.0)
    return folder


@pytest.fixture
def inputs(tmp_path: Path) -> PageInputs:
    runs = [
        write_run(tmp_path / "search", "hat", 1, 7.2, 5.9),
        write_run(tmp_path / "search", "hsnas", 1, 5.4, 5.8),
    ]
    quality = {
        "supernets": [
            {"kind": "hat", "predictor": "Supernet (loss)", "kendall_valid_bleu": -0.47,
             "rows": [{"arch_id": f"a{k}", "predicted": -8 + k / 10, "valid_bleu": 1.5 + k / 5}
                      for k in range(6)]}
        ]
    }  # fmt: skip
    (tmp_path / "supernet_quality.json").write_text(json.dumps(quality))
    table = tmp_path / "table1.csv"
    pd.DataFrame(
        {"predictor": ["Supernet (loss)", "LLM-PP"], "mae": [None, 0.51], "mae_std": [None, 0.01]}
    ).to_csv(table, index=False)
    (tmp_path / "table1.md").write_text("# Table 1\n\nGold = `valid BLEU`.\n\n| a |\n|---|\n")
    frontier = tmp_path / "frontier.csv"
    arch = json.dumps({"d_inner": [128, 256], "d_model": 64, "n_layer": 2})
    pd.DataFrame({"arch_id": ["b65e4e922010"], "latency_ms": [9.8], "arch": [arch]}).to_csv(
        frontier, index=False
    )
    png = tmp_path / "frontier.png"
    Image.new("RGB", (60, 40), "navy").save(png)
    return PageInputs(
        experiment="demo",
        runs=runs,
        supernet_curves={"HAT supernet": _curve(tmp_path / "supernet.csv", 13.0)},
        tfs_curves=[_curve(tmp_path / "tfs.csv", 14.0)],
        supernet_quality=tmp_path / "supernet_quality.json",
        tables=[("Predictor quality (Table 1)", table), ("LTS frontier", frontier)],
        figures=[("LTS Pareto frontier", png)],
    )


def test_readable_labels_and_architectures():
    assert readable_label("test_bleu") == "test BLEU"
    assert readable_label("latency_ms") == "latency (ms)"
    assert readable_label("params_m") == "size (M params)"
    assert readable_label("latency-8ms BLEU") == "latency-8ms BLEU"  # already readable
    arch = SPACE.smallest()
    columns = arch_columns(arch)
    assert columns["encoder layers"] == arch.encoder_layer_num
    assert columns["encoder FFN dims"] == " · ".join(map(str, arch.encoder_ffn_embed_dim))
    expected = [1 if v == -1 else v + 1 for v in arch.decoder_arbitrary_ende_attn]
    attends = columns["encoder layers each decoder layer attends"]
    assert attends == " · ".join(map(str, expected))


def test_page_shows_what_won_every_table_and_plot(inputs: PageInputs):
    page = build_page(inputs)
    rows, plots = results_content(page)
    # Winners: one row per search; plots: scatter, training curves, supernet scatter, frontier.
    assert rows == 2 and len(plots) == 4 and all(w > 100 for w, _ in plots[:3])
    for text in (
        "What was run", "What won", "test BLEU", "latency measured (ms)", "search hours",
        "encoder FFN dims", "Winning architectures", "Predictor quality (Table 1)",
        "<code>valid BLEU</code>", "0.510 ± 0.010", "MAE", "FFN dims", "128 · 256",
    ):  # fmt: skip
        assert text in page, text
    assert '{"' not in page.replace("&quot;", '"').split("<h2>Tables</h2>")[0]  # no JSON


def test_an_empty_table_shows_its_notes(inputs: PageInputs, tmp_path: Path):
    """A table written without rows (Table 12 of a one-seed run: a bare newline) is shown by its
    notes, not an error."""
    (tmp_path / "table12.csv").write_text("\n")
    (tmp_path / "table12.md").write_text(
        "# Table 12\n\nMethods searched with more than one seed: none.\n"
    )
    inputs.tables.append(("Per search seed (Table 12)", tmp_path / "table12.csv"))
    page = build_page(inputs)
    section = page.split("Per search seed (Table 12)")[1]
    assert "more than one seed: none" in section and "No rows in this run." in section


def test_page_errors_name_the_file(inputs: PageInputs, tmp_path: Path):
    with pytest.raises(DataError, match="expected TITLE=PATH"):
        parse_pairs(["no-title.csv"], "--table")
    inputs.tables.append(("Gone", tmp_path / "gone.csv"))
    with pytest.raises(DataError, match=r"gone\.csv: table not found"):
        build_page(inputs)
    bad = inputs.runs[0] / "scored.csv"
    bad.write_text("iteration,score\n1,2\n")
    inputs.tables.pop()
    with pytest.raises(DataError, match=r"scored\.csv: missing column\(s\) arch_id"):
        build_page(inputs)


def test_results_page_command(inputs: PageInputs, tmp_path: Path):
    out = tmp_path / "report" / "results.html"
    argv = ["report", "results-page", "--experiment", "demo", "--out", str(out), "--runs"]
    argv += [str(p) for p in inputs.runs]
    argv += ["--supernet-curve", f"HAT supernet={inputs.supernet_curves['HAT supernet']}"]
    argv += ["--supernet-quality", str(inputs.supernet_quality)]
    argv += ["--table", f"Predictor quality (Table 1)={inputs.tables[0][1]}"]
    assert main(argv) == 0
    rows, plots = results_content(out.read_text())
    assert rows == 2 and len(plots) == 3


@needs_chromium
def test_chromium_renders_the_winner_table_and_plots(inputs: PageInputs, tmp_path: Path):
    page = tmp_path / "results.html"
    page.write_text(build_page(inputs))
    shot = tmp_path / "results.png"
    result = check_report(page, shot, expect=["What won"], results=True, width=1200, height=900)
    assert result.winner_rows == 2 and len(result.plots) == 4 and shot.is_file()
    empty = tmp_path / "empty.html"
    empty.write_text("<h1>" + "Search tables " * 50 + "</h1><table id='other'></table>")
    with pytest.raises(RenderError, match="no winner table"):
        check_report(empty, tmp_path / "empty.png", results=True, width=800, height=600)
