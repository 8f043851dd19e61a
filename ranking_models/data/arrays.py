"""The processed data as arrays: what the trainer gets, and the base it is derived from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "valid", "test")


@dataclass
class Split:
    """One split as arrays: x_cat int64 [n, F] (0 = OOV), x_num float32 [n, D], y float32 [n].

    Arrays read from the cache are copy-on-write memory maps: writable (torch takes them
    without a copy or a warning), and a write never reaches the file.
    """

    x_cat: np.ndarray
    x_num: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class ProcessedData:
    """A dataset ready for training; ``vocab_sizes`` include the OOV index 0."""

    name: str
    cat_names: list[str]
    vocab_sizes: list[int]
    num_names: list[str]
    train: Split
    valid: Split
    test: Split
    fingerprint: str

    @property
    def background_ctr(self) -> float:
        """Positive rate of the whole train split (the NE denominator's CTR)."""
        return float(self.train.y.mean())

    def split(self, name: str) -> Split:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]


@dataclass
class BaseSplit(Split):
    """A split as the data spec processes it, plus the raw numerical values (float64
    [n, D], NaN = missing) that other transforms and buckets start from."""

    raw_num: np.ndarray


@dataclass
class BaseData:
    """The data spec's processing (split, vocabularies, standardised numerics), before the
    trial config's ``features`` section. ``key`` identifies it (spec + source contents)."""

    name: str
    cat_names: list[str]
    vocab_sizes: list[int]
    num_names: list[str]
    log1p: list[str]  # numerical columns the data spec log1p-transforms
    min_frequency: int  # the data spec's
    key: str
    splits: dict[str, BaseSplit]
    cached: bool = False  # read from, or written to, the processed-data cache

    @property
    def train(self) -> BaseSplit:
        return self.splits["train"]

    @property
    def n_rows(self) -> int:
        return sum(len(s) for s in self.splits.values())

    def processed(self) -> ProcessedData:
        """The data as the trainer takes it with the default features section."""
        splits = {k: Split(s.x_cat, s.x_num, s.y) for k, s in self.splits.items()}
        return ProcessedData(
            name=self.name,
            cat_names=list(self.cat_names),
            vocab_sizes=list(self.vocab_sizes),
            num_names=list(self.num_names),
            train=splits["train"],
            valid=splits["valid"],
            test=splits["test"],
            fingerprint=self.key,
        )
