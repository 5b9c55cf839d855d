"""SAE evaluations beyond difficulty, one folder per evaluation (in the manner of SAEBench).

Each ``evals/<name>/`` holds ``config.py`` (a frozen config validated by the one
validator of :mod:`.base`), ``output.py`` (the pydantic model of the written result; its
JSON schema is generated), ``main.py`` (the computation, ``headline`` for the ledger),
``plot.py`` (the figure) and an ``__init__`` with its ``EVALUATION`` entry; the registry
is :data:`sae_difficulty.evals.base.REGISTRY`. The ``sae_evals`` rule group
(``rules/sae_evals.smk``) runs them as store nodes on the demo LM. How to add one:
``evals/README.md``.
"""
