"""Counts agree with every architecture released in the llmas TFS-Eval files."""

from __future__ import annotations

import pytest

from nasflow.core.io import iter_jsonl
from nasflow.efficiency import count_embedding_params, count_flops, count_params
from nasflow.space.hat import Arch, get_space
from nasflow.tfs.format import TASK_VOCAB_SIZES


@pytest.mark.shared
def test_counts_match_released_numbers(mirror):
    files = sorted((mirror / "llmas" / "train-test_seedarchs").glob("*/*/*.jsonl.gz"))
    assert len(files) == 18
    checked, worst = 0, 0.0
    for path in files:
        vocab = TASK_VOCAB_SIZES[path.parent.name]
        for _, record in iter_jsonl(path):
            scratch = record["scratch"]
            arch = get_space("hat-wmt").validate(Arch.from_arch_info(scratch["arch_info"]))
            assert count_params(arch) == scratch["num_parameters_without_embedding_weights"]
            assert count_embedding_params(arch, vocab) == scratch["num_embedding_parameters"]
            for ours, theirs in (
                (count_flops(arch, vocab), scratch["total_flops"]),
                (
                    count_flops(arch, vocab, include_last_layer=False),
                    scratch["total_flops_without_last_layer"],
                ),
            ):
                worst = max(worst, abs(ours - theirs) / theirs)
            checked += 1
    assert checked == 270
    assert worst < 1e-3, f"worst FLOPs relative error {worst:.2e}"
