"""Figure of the steering evaluation: success rate vs perplexity per method."""

from __future__ import annotations

from pathlib import Path

from sae_difficulty.evals.steering.main import SteeringResult
from sae_difficulty.utils.plotting import new_figure, save_figure


def plot_steering(result: SteeringResult, path: str | Path) -> Path:
    """Success rate vs perplexity, one curve per method, points annotated with the coefficient;
    the fluency ceiling dashed and each method's matched point circled."""
    curves = result.table()
    fig = new_figure(6.4, 4.4)
    ax = fig.subplots()
    for method, rows in curves.groupby("method", sort=False):
        line = ax.plot(rows["perplexity"], rows["success_rate"], marker="o", label=method)[0]
        for _, row in rows.iterrows():
            ax.annotate(f"{row['coefficient']:g}", (row["perplexity"], row["success_rate"]), textcoords="offset points", xytext=(3, 3), fontsize=7)
        best = rows[rows["matched"]]
        ax.scatter(best["perplexity"], best["success_rate"], s=160, facecolors="none", edgecolors=line.get_color(), linewidths=1.5)
    ax.axvline(result.perplexity_ceiling, color="grey", linestyle="--", linewidth=1, label="fluency ceiling")
    ax.set_xscale("log")
    ax.set_xlabel("perplexity of continuation under the unsteered model")
    ax.set_ylabel("steering success rate")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(f"Steering at {result.hook_name} (coefficient x {result.scale:.3g})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
