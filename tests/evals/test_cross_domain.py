"""Cross-domain SAE evaluation on two planted domains with mostly disjoint directions.

Domain "prose" activations are sparse non-negative combinations of basis directions
0..5, domain "code" of directions 6..11; direction 12 is shared (same distribution on
both domains). Each domain's SAE is built by hand: decoder rows = its domain's directions
+ the shared one + one direction that never occurs, encoder = the decoder's transpose
(its pseudo-inverse, the rows being orthonormal) with a small negative bias so noise does
not fire features. So each SAE reconstructs its own domain and not the other one.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

from sae_difficulty.evals import cross_domain as cd
from sae_difficulty.utils.errors import InputError
from tests.evals.schema_checks import assert_schema_accepts

torch.set_num_threads(1)

D_IN = 16
N_ROWS = 2000
CONTEXT_LENGTH = 9  # 8 rows per window
DOMAIN_DIRECTIONS = {"prose": list(range(0, 6)), "code": list(range(6, 12))}
SHARED, NEVER = 12, 15
THRESHOLD = 0.05
PLANTED_ROW = 37  # window 4, position 6
PLANTED_TOKEN, PREVIOUS_TOKEN = 7, 8


def make_rows(directions: list[int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((N_ROWS, D_IN))
    active = rng.random((N_ROWS, len(directions))) < 0.3
    x[:, directions] = active * rng.uniform(0.5, 2.0, size=active.shape)
    x[:, SHARED] = (rng.random(N_ROWS) < 0.3) * rng.uniform(0.5, 2.0, size=N_ROWS)
    x += 0.005 * rng.standard_normal(x.shape)
    return x.astype(np.float32)


def make_sae(directions: list[int], architecture: str = "relu"):
    """Features: the domain's directions, then the shared direction, then a never-occurring one."""
    features = [*directions, SHARED, NEVER]
    decoder = torch.zeros(len(features), D_IN)
    decoder[torch.arange(len(features)), torch.tensor(features)] = 1.0
    if architecture == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=len(features), k=4))
    else:
        sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=len(features)))
    with torch.no_grad():
        sae.W_dec.copy_(decoder)
        sae.W_enc.copy_(torch.linalg.pinv(decoder))
        sae.b_enc.fill_(-THRESHOLD)
        sae.b_dec.zero_()
    return sae.eval()


@pytest.fixture(scope="module")
def planted():
    heldout = {domain: make_rows(dirs, seed) for seed, (domain, dirs) in enumerate(DOMAIN_DIRECTIONS.items())}
    # one very strong context for code feature 0 (direction 6) at a known token
    heldout["code"][PLANTED_ROW] = 0.0
    heldout["code"][PLANTED_ROW, 6] = 10.0
    rng = np.random.default_rng(5)
    n_windows = N_ROWS // (CONTEXT_LENGTH - 1)
    tokens = {d: rng.integers(10, 60, size=(n_windows, CONTEXT_LENGTH)) for d in heldout}
    for array in tokens.values():
        array[:, 0] = 0  # BOS
    window, position = divmod(PLANTED_ROW, CONTEXT_LENGTH - 1)
    tokens["code"][window, position + 1] = PLANTED_TOKEN
    tokens["code"][window, position] = PREVIOUS_TOKEN
    saes = {
        "prose_relu": (make_sae(DOMAIN_DIRECTIONS["prose"]), "prose", "relu"),
        "code_topk": (make_sae(DOMAIN_DIRECTIONS["code"], "topk"), "code", "topk"),
    }
    config = cd.CrossDomainConfig(n_boot=200, bootstrap_block_rows=CONTEXT_LENGTH - 1, batch_size=512)
    result = cd.evaluate_cross_domain(saes, heldout, config)
    return saes, heldout, tokens, result


def decode_token(token: int) -> str:
    return {0: "<bos>", PLANTED_TOKEN: "<b>&\n", PREVIOUS_TOKEN: " before"}.get(token, f" t{token}")


def test_reconstruction_metrics_match_direct_computation(planted):
    saes, heldout, _, _ = planted
    sae = saes["prose_relu"][0]
    rows = heldout["prose"]
    metrics = cd.reconstruction_metrics(sae, rows, batch_size=300)
    with torch.no_grad():
        codes = sae.encode(torch.from_numpy(rows)).double().numpy()
        x_hat = sae.decode(torch.from_numpy(codes).float()).double().numpy()
    x = rows.astype(np.float64)
    assert metrics["mse"] == pytest.approx(np.mean((x - x_hat) ** 2), rel=1e-5)
    expected_ev = 1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum()
    assert metrics["explained_variance"] == pytest.approx(expected_ev, abs=1e-6)
    assert metrics["explained_variance"] > 0.95
    assert metrics["l0"] == pytest.approx(np.count_nonzero(codes, axis=1).mean())
    assert metrics["l1"] == pytest.approx(np.abs(codes).sum(axis=1).mean(), rel=1e-5)
    # 6 domain features + the shared one fire; the never-occurring direction is dead: 1 of 8
    assert metrics["dead_fraction"] == pytest.approx(1 / 8)
    assert metrics["n_rows"] == N_ROWS


def test_zarr_rows_give_the_same_metrics_as_numpy(planted, tmp_path):
    saes, heldout, _, _ = planted
    stored = zarr.create_array(tmp_path / "rows.zarr", shape=heldout["code"].shape, chunks=(256, D_IN), dtype="f4")
    stored[:] = heldout["code"]
    sae = saes["code_topk"][0]
    assert cd.reconstruction_metrics(sae, stored, batch_size=300) == cd.reconstruction_metrics(
        sae, heldout["code"], batch_size=300
    )


def test_in_domain_reconstruction_beats_out_of_domain(planted):
    _, _, _, result = planted
    table = result.table()
    assert len(table) == 4
    for name in ("prose_relu", "code_topk"):
        rows = table[table["sae"] == name].set_index("in_domain")
        assert rows.loc[True, "explained_variance"] > rows.loc[False, "explained_variance"] + 0.5
        # out of domain only the shared feature fires: 7 of 8 features are dead there
        assert rows.loc[False, "dead_fraction"] == pytest.approx(7 / 8)
    gaps = result.gaps.set_index("sae")
    assert (gaps["gap"] > 0.5).all()
    assert (
        (gaps["ci_low"] > 0.5).all()
        and (gaps["ci_low"] <= gaps["gap"]).all()
        and (gaps["gap"] <= gaps["ci_high"]).all()
    )
    top = cd.headline(result)
    assert top["value"] == pytest.approx(gaps["gap"].mean())
    assert top["null"] == 0.0 and top["ci_low"] > 0


def test_selectivity_of_planted_features(planted):
    _, _, _, result = planted
    frame = result.selectivity["prose_relu"]
    domain_features = frame.iloc[:6]
    assert (domain_features["preferred_domain"] == "prose").all()
    assert domain_features["selectivity"].to_numpy() == pytest.approx(1.0)
    shared = frame.iloc[6]
    assert shared["selectivity"] == pytest.approx(0.5, abs=0.05)
    dead = frame.iloc[7]
    assert np.isnan(dead["selectivity"]) and dead["preferred_domain"] is None
    summary = result.selectivity_summary.set_index("sae").loc["prose_relu"]
    assert summary["n_live"] == 7
    assert summary["share_selective"] == pytest.approx(6 / 7)
    assert summary["preferred_counts"]["prose"] == 6 + (shared["preferred_domain"] == "prose")


def test_feature_selectivity_known_answer():
    frame = cd.feature_selectivity(
        {"a": np.array([3.0, 1.0, 0.0, 0.0]), "b": np.array([0.0, 1.0, 2.0, 0.0]), "c": np.array([1.0, 2.0, 0.0, 0.0])}
    )
    assert list(frame["preferred_domain"][:3]) == ["a", "c", "b"]
    assert frame["selectivity"][:3].tolist() == pytest.approx([0.75, 0.5, 1.0])
    assert np.isnan(frame["selectivity"][3]) and frame["preferred_domain"][3] is None
    assert list(frame.columns) == ["feature", "preferred_domain", "selectivity", "mass_a", "mass_b", "mass_c"]
    with pytest.raises(InputError, match="non-negative"):
        cd.feature_selectivity({"a": np.array([-1.0]), "b": np.array([1.0])})


def test_markdown_shows_planted_top_context(planted):
    saes, heldout, tokens, result = planted
    sae = saes["code_topk"][0]
    config = cd.CrossDomainConfig(n_top_features=3, n_top_contexts=2, context_tokens=3)
    page = cd.top_contexts_markdown(
        sae, "code_topk", heldout, tokens, decode_token, result.selectivity["code_topk"], config
    )
    assert "## Feature 0: prefers code (selectivity 1.000)" in page
    # the planted activating token, escaped, newline marked, highlighted, after its two predecessors
    window, position = divmod(PLANTED_ROW, CONTEXT_LENGTH - 1)
    before = f" t{tokens['code'][window, position - 1]}"
    assert f"| 1 | code | {10.0 - THRESHOLD:.4g} | {before} before<mark>&lt;b&gt;&amp;⏎</mark> |" in page
    assert page.count("## Feature") == 3
    assert "<b>" not in page  # raw token text never leaks unescaped


def test_result_validates_and_is_deterministic(planted, tmp_path):
    saes, heldout, _, result = planted
    payload = result.to_dict()
    assert_schema_accepts(cd.CrossDomainOutput, payload)
    again = cd.evaluate_cross_domain(saes, heldout, result.config).to_dict()
    assert json.dumps(again, sort_keys=True) == json.dumps(payload, sort_keys=True)
    stacked = result.selectivity_table()
    assert set(stacked["sae"]) == {"prose_relu", "code_topk"} and len(stacked) == 16
    path = cd.plot_cross_domain(result, tmp_path / "cross_domain.png")
    assert path.stat().st_size > 1000
    broken = dict(payload, rows=[{**payload["rows"][0], "dead_fraction": 1.5}])
    with pytest.raises(InputError, match="dead_fraction"):
        cd.CrossDomainOutput.check(broken)


def test_bad_inputs_raise_one_line_errors(planted):
    saes, heldout, tokens, result = planted
    with pytest.raises(InputError, match="n_top_features"):
        cd.CrossDomainConfig(n_top_features=0)
    with pytest.raises(InputError, match="unknown key"):
        cd.CrossDomainConfig.from_dict({"n_top_feature": 3})
    assert cd.CrossDomainConfig.from_dict({"batch_size": 64.0}).batch_size == 64
    with pytest.raises(InputError, match="train domain 'math'"):
        cd.evaluate_cross_domain({"x": (saes["prose_relu"][0], "math", "relu")}, heldout)
    with pytest.raises(InputError, match="at least two domains"):
        cd.evaluate_cross_domain(saes, {"prose": heldout["prose"]})
    with pytest.raises(InputError, match=r"\[n, 16\]"):
        cd.reconstruction_metrics(saes["prose_relu"][0], np.zeros((4, 3), dtype=np.float32))
    short_tokens = {d: t[:10] for d, t in tokens.items()}
    with pytest.raises(InputError, match="token windows hold only 80"):
        cd.top_contexts_markdown(
            saes["code_topk"][0], "x", heldout, short_tokens, decode_token, result.selectivity["code_topk"]
        )
    assert isinstance(result.rows, pd.DataFrame)
