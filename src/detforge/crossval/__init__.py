"""K-fold cross-validation over the engine: folds (data/folds.py), one run per fold, summary.

Above ``engine`` (it runs the Trainer), below ``api`` and ``cli``; importing it does no work.
"""
