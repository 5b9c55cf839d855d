"""Sparse autoencoders: zarr activation caches, sae-lens training, loading and encoding, quality."""
