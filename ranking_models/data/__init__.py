"""Datasets: spec validation (``registry``, torch-free), fetching, loading and processing.

``load_data(spec, features)`` (in ``ranking_models.data.processing``) returns numpy arrays,
with the trial config's features section applied (``features``); ``profile_data(spec)``
(``profile``) describes the data for the planner; ``fingerprint(spec)`` (``fingerprint``)
detects a changed source. Nothing here imports torch.
"""
