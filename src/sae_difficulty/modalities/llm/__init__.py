"""The language-model modality (Pythia / GPT-NeoX through TransformerLens): backbone, corpus, tasks, scoring, features, patching."""
