"""Training augmentation: ``core`` (Sample, params, box and geometry ops) -> one module per
transform -> ``pipeline`` (the training chain)."""
