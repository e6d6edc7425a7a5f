"""Training engine: optimizer groups, schedules, EMA, checkpoints and the trainer."""
