"""Hyperparameter search on Optuna: spaces over any setting, pruned trials that are ordinary runs,
a journal storage that several processes share and that resumes (see README "Hyperparameter
search")."""
