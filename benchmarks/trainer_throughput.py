"""Trainer throughput: ranking_models' sliced in-memory batches vs a plain Dataset + DataLoader.

Same model (default DCN-v2 and DLRM configs), same data (MovieLens-100k train split), same
batch size, same process, one epoch each after a short warm-up. Prints figures, then as its
LAST line one JSON object {name: value}.

    python benchmarks/trainer_throughput.py [--families dcn_v2,dlrm] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ranking_models.config import default_config, validate_config
from ranking_models.data.processing import ProcessedData, Split, load_data
from ranking_models.errors import DataError
from ranking_models.models import build_model
from ranking_models.train import configure_threads
from ranking_models.trainer import Trainer


class RowDataset(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """The usual per-sample Dataset: one row of tensors per __getitem__."""

    def __init__(self, split: Split) -> None:
        self.x_cat = torch.from_numpy(split.x_cat)
        self.x_num = torch.from_numpy(split.x_num)
        self.y = torch.from_numpy(split.y)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.x_cat[i], self.x_num[i], self.y[i]


def _config(family: str, batch_size: int | None) -> dict[str, Any]:
    config = default_config(family)
    config["train"]["epochs"] = 1
    config["train"]["log_every_steps"] = 10**9
    if batch_size:
        config["train"]["batch_size"] = batch_size
    return config


def dataloader_epoch(
    family: str, data: ProcessedData, device: torch.device, batch_size: int | None = None
) -> float:
    """A plain training loop: DataLoader(shuffle) + torch.optim.Adam; returns samples/s."""
    cfg = validate_config(_config(family, batch_size))
    torch.manual_seed(0)
    model = build_model(cfg.model, data.vocab_sizes, len(data.num_names), data.background_ctr)
    model.to(device).train()
    opt = torch.optim.Adam(
        [
            {"params": model.dense_parameters(), "lr": cfg.train.lr_dense},
            {"params": model.sparse_parameters(), "lr": cfg.train.lr_sparse},
        ]
    )
    loader = DataLoader(RowDataset(data.train), batch_size=cfg.train.batch_size, shuffle=True)
    seen, t0 = 0, 0.0
    for step, (x_cat, x_num, y) in enumerate(loader):
        if step == 3:  # warm-up excluded, as for the trainer below
            seen, t0 = 0, time.perf_counter()
        x_cat, x_num, y = x_cat.to(device), x_num.to(device), y.to(device)
        loss = F.binary_cross_entropy_with_logits(model(x_cat, x_num), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
    _sync(device)
    return seen / (time.perf_counter() - t0)


def trainer_epoch(
    family: str, data: ProcessedData, device: torch.device, batch_size: int | None = None
) -> float:
    """ranking_models.trainer on one epoch; returns its measured training samples/s."""
    config = _config(family, batch_size)
    trainer = Trainer(validate_config(config), data, seed=0, device=device)
    trainer.model.train()
    warm = iter(trainer._batches(99))
    for _ in range(3):  # warm-up steps on a throwaway permutation
        x_cat, x_num, y = next(warm)
        F.binary_cross_entropy_with_logits(trainer.model(x_cat, x_num), y).backward()
    trainer.optimizer.zero_grad()
    _sync(device)
    t0 = time.perf_counter()
    trainer._train_epoch(0)
    _sync(device)
    return trainer.train_samples / (time.perf_counter() - t0)


def pipeline_only(
    data: ProcessedData, device: torch.device, batch_size: int
) -> tuple[float, float]:
    """Samples/s of the input pipelines alone (no model): sliced tensors vs DataLoader."""
    config = _config("lr", batch_size)
    trainer = Trainer(validate_config(config), data, seed=0, device=device)
    t0 = time.perf_counter()
    n = sum(len(y) for _, _, y in trainer._batches(0))
    _sync(device)
    ours = n / (time.perf_counter() - t0)
    loader = DataLoader(RowDataset(data.train), batch_size=batch_size, shuffle=True)
    t0 = time.perf_counter()
    n = sum(len(y.to(device)) for _, _, y in loader)
    _sync(device)
    return ours, n / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="dcn_v2,dlrm")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--small-batch", type=int, default=256, help="a second, smaller batch size")
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device)
    args = parser.parse_args()
    configure_threads()
    device = torch.device(args.device)
    try:
        data = load_data({"name": "movielens-100k"})
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    figures: dict[str, Any] = {
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "train_rows": len(data.train),
    }
    if device.type == "cuda":
        figures["gpu"] = torch.cuda.get_device_name(device)
    print(
        f"MovieLens-100k train rows: {len(data.train)}; device {device}; "
        f"torch threads {torch.get_num_threads()}"
    )
    default_bs = validate_config(default_config("dcn_v2")).train.batch_size
    for family in args.families.split(","):
        for bs, suffix in ((default_bs, ""), (args.small_batch, f"_bs{args.small_batch}")):
            # Interleaved, best of --repeats: the machines are shared and timings are noisy.
            ours_runs, plain_runs = [], []
            for _ in range(args.repeats):
                ours_runs.append(trainer_epoch(family, data, device, bs))
                rss_trainer = peak_rss_mb()
                plain_runs.append(dataloader_epoch(family, data, device, bs))
            ours, plain = max(ours_runs), max(plain_runs)
            ratio = ours / plain
            print(
                f"{family:>8} batch {bs:>5}: trainer {ours:>10,.0f} samples/s | "
                f"Dataset+DataLoader {plain:>9,.0f} samples/s | ratio {ratio:5.2f}x"
            )
            figures[f"{family}{suffix}_trainer_samples_per_s"] = round(ours, 1)
            figures[f"{family}{suffix}_dataloader_samples_per_s"] = round(plain, 1)
            figures[f"{family}{suffix}_ratio"] = round(ratio, 2)
            if not suffix:
                figures[f"{family}_peak_rss_mb_after_trainer"] = round(rss_trainer, 1)
        if device.type == "cuda":
            figures[f"{family}_cuda_peak_mb"] = round(
                torch.cuda.max_memory_allocated(device) / 2**20, 1
            )
    ours, plain = pipeline_only(data, device, default_bs)
    print(
        f"input pipeline only, batch {default_bs}: sliced tensors {ours:,.0f} samples/s | "
        f"Dataset+DataLoader {plain:,.0f} samples/s | ratio {ours / plain:.0f}x"
    )
    figures["pipeline_only_trainer_samples_per_s"] = round(ours, 1)
    figures["pipeline_only_dataloader_samples_per_s"] = round(plain, 1)
    figures["pipeline_only_ratio"] = round(ours / plain, 1)
    figures["peak_memory_mb"] = round(peak_rss_mb(), 1)
    print(f"peak memory (process RSS): {figures['peak_memory_mb']:.0f} MB")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
