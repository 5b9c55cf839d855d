"""The time-series modality (Chronos-T5): backbone, ETTh1 windows, features, patching."""
