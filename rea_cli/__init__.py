"""rea: a Slurm-native Ranking Engineer Agent."""

__version__ = "0.1.0"
