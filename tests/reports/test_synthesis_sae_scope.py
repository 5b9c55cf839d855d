"""The synthesis' SAE table with dataset-matched SAEs: two datasets' SAEs of one layer and recipe
are two rows, each with the stability of its own dataset's seeds."""

from __future__ import annotations

from sae_difficulty.reports.synthesis import sae_group, sae_table


def test_each_dataset_sae_gets_its_own_stability() -> None:
    rows = [{"role": f"q_{dataset}", "modality": "llm", "dataset": dataset, "layer": 12, "architecture": "topk",
             "expansion": 4, "seed": 0} for dataset in ("hellaswag", "squad")]  # fmt: skip
    rows.append({"role": "q_tsfm", "modality": "tsfm", "layer": 3, "architecture": "topk", "expansion": 4, "seed": 0})
    quality = {row["role"]: ({"explained_variance": 0.9, "mean_l0": 32, "dead_fraction": 0.0, "spliced": {"delta_nats": 0.1}},
                             f"node_{row['role']}") for row in rows}  # fmt: skip
    stability = {sae_group(row): ({"pwmcc_mean": pwmcc, "random_mean": 0.1}, f"stab_{pwmcc}")
                 for row, pwmcc in zip(rows, (0.7, 0.5, 0.6))}  # fmt: skip
    table = sae_table(rows, quality, stability)
    assert list(table["modality"]) == ["llm/hellaswag", "llm/squad", "tsfm"]
    assert list(table["pwmcc"]) == [0.7, 0.5, 0.6]
    assert list(table["loss_unit"]) == ["nats", "nats", "CRPS"]  # the unit still follows the modality
