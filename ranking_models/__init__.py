"""rea's ranking models: models, datasets, metrics and the trainer that runs inside a trial.

This package is a leaf: it imports nothing from rea_cli, and importing it (or
``ranking_models.config`` / ``ranking_models.data.registry``) does not import torch.
"""

__version__ = "0.1.0"
