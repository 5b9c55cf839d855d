"""Human-facing reports: the synthesis, the run ledger, the evaluation-suite and modular reports, figures."""
