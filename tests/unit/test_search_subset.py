"""The `fast` search protocol: a validation subset chosen by a rank-fidelity check (synthetic
scorers), recorded in the outputs, resumable; and the supernet's subset scoring (toy task)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from nasflow.core.errors import ConfigError
from nasflow.data import load_split
from nasflow.evaluate import validation_loss
from nasflow.model import SuperTransformer
from nasflow.predictors import Predictor, SupernetPredictor
from nasflow.search import EvolutionSettings, PredictorSchedule, run_search, write_outputs
from nasflow.search.subset import SubsetScorer, SubsetSettings, check_subsets, choose_fraction
from nasflow.space.hat import Arch, get_space

SPACE = get_space("demo")
SETTINGS = EvolutionSettings(
    population=8, parents=2, mutations=3, crossovers=3, iterations=4, seed=5
)
SENTENCES = 320


class FakeSupernet(Predictor):
    """A supernet stand-in: a linear score of the architecture's features, plus, on a subset of
    `n` of the `SENTENCES` sentences, noise of scale `noise * (1 - n / SENTENCES)` that is fixed
    per (architecture, subset size): rank-faithful subsets when `noise` is 0."""

    name = "fake supernet"

    def __init__(self, noise: float = 0.0, fail_on_call: int | None = None) -> None:
        self.noise = noise
        self.fail_on_call = fail_on_call
        self.weights = np.linspace(-1, 2, 10)
        self.subset: np.ndarray | None = None
        self.calls: list[list[Arch]] = []
        self.checked = 0
        self.restricted: list[int | None] = []

    def score(self, arch: Arch, subset: np.ndarray | None) -> float:
        value = float(self.weights @ SPACE.distill_features(arch))
        if subset is None or len(subset) == SENTENCES:
            return value
        rng = np.random.default_rng([int(arch.id, 16) % 2**32, len(subset)])
        return value + self.noise * (1 - len(subset) / SENTENCES) * float(rng.normal())

    def valid_subsets(self, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
        order = np.random.default_rng(seed).permutation(SENTENCES)
        return [np.sort(order[: max(1, round(f * SENTENCES))]) for f in fractions]

    def subset_scores(
        self, archs: Sequence[Arch], subsets: Sequence[np.ndarray | None]
    ) -> np.ndarray:
        self.checked += len(archs)
        return np.array([[self.score(a, s) for a in archs] for s in subsets])

    def restrict(self, subset: np.ndarray | None) -> None:
        self.subset = subset
        self.restricted.append(None if subset is None else len(subset))

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        if self.fail_on_call is not None and len(self.calls) + 1 >= self.fail_on_call:
            raise RuntimeError("supernet killed")
        self.calls.append(list(archs))
        return np.array([self.score(a, self.subset) for a in archs])


def fast_search(predictor: FakeSupernet, **kwargs) -> object:
    return run_search(
        SPACE,
        {"supernet": predictor},
        PredictorSchedule.single(SETTINGS.iterations),
        [],
        SETTINGS,
        protocol="fast",
        **kwargs,
    )


def test_choose_fraction_takes_the_smallest_faithful_subset():
    full = [1.0, 2.0, 3.0, 4.0, 5.0]
    taus, chosen = choose_fraction(full, [[5, 4, 3, 2, 1], full, full], 0.9)
    assert taus == pytest.approx([-1.0, 1.0, 1.0]) and chosen == 1
    # An undefined tau (constant scores) never passes; nothing passing gives None.
    taus, chosen = choose_fraction(full, [[1, 1, 1, 1, 1], [2, 1, 3, 4, 5]], 0.9)
    assert np.isnan(taus[0]) and taus[1] == pytest.approx(0.8) and chosen is None


def test_a_faithful_scorer_gets_the_smallest_subset():
    scorer = FakeSupernet(noise=0.0)
    assert isinstance(scorer, SubsetScorer)
    archs = SPACE.sample_unique(20, seed=1)
    check = check_subsets(scorer, "supernet", archs, SubsetSettings())
    assert check.passed and check.chosen == 0.0625 and check.taus == [1.0] * 4
    assert check.sentences == [20, 40, 80, 160] and check.full_sentences == SENTENCES
    assert check.indices is not None and len(check.indices) == 20
    assert scorer.checked == 20  # one pass per architecture covers every subset


def test_a_noisy_scorer_falls_back_to_the_full_set():
    scorer = FakeSupernet(noise=100.0)
    check = check_subsets(scorer, "supernet", SPACE.sample_unique(20, seed=1), SubsetSettings())
    assert not check.passed and check.chosen == 1.0 and check.subset is None
    assert all(tau < 0.9 for tau in check.taus)
    record = check.to_dict(with_indices=False)
    assert record["chosen_sentences"] is None and "indices" not in record


def test_moderate_noise_takes_the_first_subset_that_passes():
    scorer = FakeSupernet(noise=0.2)
    check = check_subsets(scorer, "supernet", SPACE.sample_unique(20, seed=1), SubsetSettings())
    first = next(i for i, tau in enumerate(check.taus) if tau >= 0.9)
    assert check.passed and check.chosen == SubsetSettings().fractions[first] > 0.0625


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"fractions": [0.5, 0.25]}, "increasing"),
        ({"fractions": [0.5, 1.0]}, r"lie in \(0, 1\)"),
        ({"fractions": []}, "non-empty"),
        ({"min_kendall": 2}, "min_kendall"),
        ({"sample": 2}, "sample must be an integer >= 3"),
        ({"size": 3}, "unknown search.valid_subset key"),
    ],
)
def test_bad_subset_settings_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        SubsetSettings.from_mapping(values)


def test_fast_protocol_scores_the_chosen_subset_and_records_it(tmp_path: Path):
    scorer = FakeSupernet(noise=0.0)
    result = fast_search(scorer)
    assert result.protocol == "fast" and scorer.restricted == [20]
    assert scorer.checked == 20 and scorer.subset is not None
    timing = result.timing
    assert 0 < timing["subset_seconds"] <= timing["search_seconds"]
    # `fast` caches: no architecture is sent twice.
    sent = [a.id for call in scorer.calls for a in call]
    assert len(sent) == len(set(sent)) == timing["scored"]["supernet"]
    # The same evolution as the cached protocol on the full set (a faithful subset).
    cached = run_search(
        SPACE,
        {"supernet": FakeSupernet()},
        PredictorSchedule.single(SETTINGS.iterations),
        [],
        SETTINGS,
        protocol="cached",
    )
    assert result.best_arch == cached.best_arch and result.population == cached.population
    paths = write_outputs(result, tmp_path)
    best = json.loads(paths["best.json"].read_text())
    assert best["protocol"] == "fast"
    assert best["valid_subset"] == {
        "supernet": {"chosen_fraction": 0.0625, "chosen_sentences": 20, "passed": True}
    }
    saved = json.loads(paths["timing.json"].read_text())
    assert saved["protocol"] == "fast" and saved["subset_seconds"] == timing["subset_seconds"]
    check = saved["valid_subset"]["supernet"]
    assert [row["fraction"] for row in check["tried"]] == [0.0625, 0.125, 0.25, 0.5]
    assert check["chosen_fraction"] == 0.0625 and len(check["sample_ids"]) == 20
    assert "indices" not in check
    history = paths["history.csv"].read_text().splitlines()
    assert all(line.endswith(",fast") for line in history[1:])


def test_other_protocols_run_no_check():
    scorer = FakeSupernet()
    result = run_search(
        SPACE,
        {"supernet": scorer},
        PredictorSchedule.single(SETTINGS.iterations),
        [],
        SETTINGS,
        protocol="cached",
    )
    assert scorer.checked == 0 and scorer.restricted == [] and result.valid_subset is None
    assert "subset_seconds" not in result.timing


def test_fast_search_resumes_with_its_subset(tmp_path: Path):
    reference = fast_search(FakeSupernet(noise=0.1))
    with pytest.raises(RuntimeError, match="killed"):
        fast_search(FakeSupernet(noise=0.1, fail_on_call=3), state_dir=tmp_path)
    saved = json.loads((tmp_path / "search_state.json").read_text())
    assert saved["iteration"] == 2 and saved["inputs"]["protocol"] == "fast"
    assert saved["inputs"]["valid_subset"] == SubsetSettings().to_dict()
    scorer = FakeSupernet(noise=0.1)
    resumed = fast_search(scorer, state_dir=tmp_path)
    # The check is not run again; its subset is restored.
    assert resumed.resumed_from == 2 and scorer.checked == 0
    assert scorer.restricted == [len(saved["valid_subset"]["supernet"]["indices"])]
    assert (
        resumed.best_arch == reference.best_arch
        and resumed.history[-1]["best_score"] == (reference.history[-1]["best_score"])
    )
    for record in (resumed.valid_subset["supernet"], reference.valid_subset["supernet"]):
        assert record.pop("seconds") > 0
    assert resumed.valid_subset == reference.valid_subset
    # Other check settings are another search: the state is refused.
    from nasflow.search import SearchStateError

    with pytest.raises(SearchStateError, match="valid_subset"):
        fast_search(FakeSupernet(), state_dir=tmp_path, valid_subset=SubsetSettings(sample=10))


# ---- the supernet -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def supernet() -> SuperTransformer:
    torch.manual_seed(0)
    return SuperTransformer(SPACE, 100).eval()


def test_supernet_subset_scores_match_predict(tiny_data: Path, supernet) -> None:
    predictor = SupernetPredictor(supernet, tiny_data, max_tokens=128)
    archs = [SPACE.largest(), SPACE.smallest(), *SPACE.sample_unique(2, seed=4)]
    *subsets, full = predictor.valid_subsets([0.25, 0.5, 1.0], seed=3)
    assert set(subsets[0]) < set(subsets[1]) < set(full) and len(full) == 40
    split = load_split(tiny_data, "valid")
    tokens = np.array([len(split[i][1]) + 1 for i in range(len(split))])
    for fraction, subset in zip((0.25, 0.5), subsets, strict=True):
        share = tokens[subset].sum() / tokens.sum()
        assert fraction <= share < fraction + tokens.max() / tokens.sum()
    scores = predictor.subset_scores(archs, [subsets[0], None])
    np.testing.assert_allclose(scores[1], predictor.predict(archs), atol=1e-5)
    predictor.restrict(subsets[0])
    assert sorted(int(i) for b in predictor.batches for i in b.indices) == subsets[0].tolist()
    np.testing.assert_allclose(scores[0], predictor.predict(archs), atol=1e-5)
    expected = validation_loss(supernet.extract(archs[2]), split)
    assert scores[1, 2] == pytest.approx(-expected.loss_bits, abs=1e-4)
    predictor.restrict(None)
    np.testing.assert_allclose(scores[1], predictor.predict(archs), atol=1e-5)


def test_bleu_supernet_cannot_score_subsets(tiny_data: Path, supernet) -> None:
    predictor = SupernetPredictor(supernet, tiny_data, metric="bleu", valid_sentences=4)
    with pytest.raises(ConfigError, match="predictor_metric: loss"):
        predictor.valid_subsets([0.5], seed=0)


def test_tables_name_the_fast_protocol() -> None:
    import pandas as pd

    from nasflow.report.search_tables import method_protocols, protocol_note

    results = pd.DataFrame({"method": ["hat", "hsnas"], "protocol": ["fast", "fast"]})
    note = protocol_note(results, ["hat", "hsnas"])
    assert note.startswith("Search hours: `fast` scoring protocol (the score cache")
    assert "rank-fidelity check" in note
    assert method_protocols(results, ["hat"]) == {"hat": "fast"}
