"""One module per store stage; each exposes ``build(ctx: NodeContext)``.

Rule scripts call these through ``sae_difficulty.pipeline.runner.run_node``; tests can call
them directly with a hand-made ``NodeContext``.
"""
