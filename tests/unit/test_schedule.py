"""Learning-rate schedules against HAT's reference values (WMT cosine, IWSLT inverse_sqrt)."""

from __future__ import annotations

import math

import pytest

from nasflow.config.resolve import validate_config
from nasflow.core.errors import ConfigError
from nasflow.train.schedule import CosineSchedule, InverseSqrtSchedule, make_schedule

HAT_WMT = {
    "lr_scheduler": "cosine",
    "lr": 1e-3,
    "warmup_updates": 10000,
    "warmup_init_lr": 1e-7,
    "min_lr": 1e-7,
    "max_updates": 40000,
}


def test_hat_wmt_cosine_reference_values():
    lr = make_schedule(HAT_WMT)
    assert lr == CosineSchedule(1e-3, 10000, 1e-7, 1e-7, period=30000)
    assert lr(0) == pytest.approx(1e-7)
    assert lr(5000) == pytest.approx(1e-7 + 5000 * (1e-3 - 1e-7) / 10000)
    assert lr(10000) == pytest.approx(1e-3)
    assert lr(25000) == pytest.approx(1e-7 + 0.5 * (1e-3 - 1e-7))
    assert lr(32500) == pytest.approx(1e-7 + 0.5 * (1e-3 - 1e-7) * (1 + math.cos(0.75 * math.pi)))
    assert lr(40000) == pytest.approx(1e-7) and lr(90000) == pytest.approx(1e-7)
    values = [lr(n) for n in range(0, 40001, 500)]
    peak = values.index(max(values))
    assert values[: peak + 1] == sorted(values[: peak + 1])
    assert values[peak:] == sorted(values[peak:], reverse=True)


def test_hat_iwslt_inverse_sqrt_reference_values():
    settings = {**HAT_WMT, "lr_scheduler": "inverse_sqrt", "lr": 5e-4}
    lr = make_schedule(settings)
    assert lr == InverseSqrtSchedule(5e-4, 10000, 1e-7)
    assert lr(5000) == pytest.approx(1e-7 + 0.5 * (5e-4 - 1e-7))
    assert lr(10000) == pytest.approx(5e-4)
    assert lr(40000) == pytest.approx(2.5e-4)


@pytest.mark.parametrize("kind", ["cosine", "inverse_sqrt"])
def test_no_warmup(kind):
    lr = make_schedule({**HAT_WMT, "lr_scheduler": kind, "warmup_updates": 0})
    assert lr(0) == pytest.approx(1e-3)
    assert 0 < lr(1000) < 1e-3
    if kind == "inverse_sqrt":
        assert lr(4) == pytest.approx(5e-4)
    else:
        assert lr.period == 40000 and lr(20000) == pytest.approx(1e-7 + 0.5 * (1e-3 - 1e-7))


def test_period_is_at_least_one():
    lr = make_schedule({**HAT_WMT, "warmup_updates": 100, "max_updates": 100})
    assert lr.period == 1 and lr(100) == pytest.approx(1e-3) and lr(101) == pytest.approx(1e-7)


def test_bad_settings():
    with pytest.raises(ConfigError, match="lr_scheduler 'step'"):
        make_schedule({**HAT_WMT, "lr_scheduler": "step"})
    with pytest.raises(ConfigError, match="missing setting 'min_lr'"):
        make_schedule({k: v for k, v in HAT_WMT.items() if k != "min_lr"})
    with pytest.raises(ConfigError, match="warmup_updates must be >= 0"):
        CosineSchedule(1e-3, -1, period=10)
    with pytest.raises(ConfigError, match="lr must be > 0"):
        InverseSqrtSchedule(0.0, 10)


def test_schedules_of_the_default_config_sections():
    minimal = {
        "experiment": "t",
        "space": "demo",
        "data": {"corpus": "multi30k", "source_lang": "en", "target_lang": "de"},
    }
    config = validate_config(minimal)
    assert make_schedule(config["supernet"]) == CosineSchedule(1e-3, 10000, period=30000)
    assert make_schedule(config["train"]) == CosineSchedule(1e-3, 4000, period=36000)
