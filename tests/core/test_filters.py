"""core.filters: the later of each near-duplicate prompt pair and every memorised prompt are flagged."""

from __future__ import annotations

import numpy as np
import pytest

from sae_difficulty.core import filters
from sae_difficulty.utils.errors import InputError


def random_prompts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(300)]
    return [" ".join(rng.choice(vocabulary, 12, replace=False)) for _ in range(n)]


@pytest.mark.parametrize(
    "row_block", [1024, 7]
)  # one block, and pairs that straddle blocks
def test_the_later_of_each_near_duplicate_pair_is_flagged(
    monkeypatch, row_block: int
) -> None:
    monkeypatch.setattr(filters, "ROW_BLOCK", row_block)
    prompts = random_prompts(40)
    prompts[25] = prompts[3] + " extra"  # near copy of an earlier prompt
    prompts[30] = prompts[3].upper()  # TF-IDF lowercases: an exact copy
    flags = filters.near_duplicate_flags(prompts, 0.7)
    assert np.flatnonzero(flags).tolist() == [25, 30]
    assert not filters.near_duplicate_flags(prompts, 1.0)[
        25
    ]  # "extra" keeps it below cosine 1


def test_apply_filters_counts_each_filter_by_split_and_keeps_the_rest() -> None:
    prompts = random_prompts(10)
    prompts[8] = prompts[1]
    perplexity = np.full(10, 12.0)
    perplexity[[4, 8]] = [1.2, 1.5]  # at the threshold counts as memorised
    split = np.array(["train"] * 6 + ["test"] * 4)
    result = filters.apply_filters([f"e{i}" for i in range(10)], split, prompts=prompts, prompt_perplexity=perplexity,
                                   near_duplicate_cosine=0.7, contamination_perplexity=1.5)  # fmt: skip
    assert result.filters["near_duplicate"]["ids"] == ["e8"]
    assert result.filters["contamination"]["ids"] == ["e4", "e8"]
    assert result.filters["contamination"]["n_dropped_by_split"] == {
        "test": 1,
        "train": 1,
    }
    assert (
        np.flatnonzero(~result.keep).tolist() == [4, 8]
        and result.to_dict()["n_kept"] == 8
    )
    off = filters.apply_filters([f"e{i}" for i in range(10)], split)
    assert off.keep.all() and off.filters == {}


def test_bad_thresholds_fail_with_one_line() -> None:
    with pytest.raises(InputError, match="near_duplicate_cosine"):
        filters.near_duplicate_flags(["a b", "a b"], 1.5)
    with pytest.raises(InputError, match="contamination_perplexity"):
        filters.contamination_flags([2.0], 0.5)
