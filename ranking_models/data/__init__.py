"""Datasets: spec validation (``registry``, torch-free), fetching, loading and processing.

``load_data(spec)`` (in ``ranking_models.data.loading``) returns numpy arrays; nothing here
imports torch.
"""
