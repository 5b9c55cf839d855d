"""Utilities every layer may use: one-line errors, JSON/parquet I/O, numerics, markdown cells."""
