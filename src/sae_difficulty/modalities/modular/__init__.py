"""The modular-arithmetic model whose Fourier features are the stability study's ground truth."""
