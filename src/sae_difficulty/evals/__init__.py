"""SAE evaluations beyond difficulty, one module per evaluation (in the manner of SAEBench).

Each module has a frozen ``<Name>Config`` (validated, ``from_dict``), a typed
``<Name>Result`` (``to_dict`` validating against the module's ``RESULT_SCHEMA``,
``table``), a ``headline`` for the run ledger and a plot. The ``sae_evals`` rule group
(``rules/sae_evals.smk``) runs them as store nodes on the demo LM.
"""
