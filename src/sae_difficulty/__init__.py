"""sae-difficulty: do SAE features of a foundation model encode a self-difficulty signal?"""

__version__ = "0.1.0"
