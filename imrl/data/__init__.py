"""Data stage: raw files -> interactions table -> preprocessed chronological splits."""
