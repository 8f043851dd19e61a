"""The training loop: in-memory tensors sliced into batches, per-epoch validation, instability
detection, epoch-boundary checkpoints. File and process concerns live in ``train.py``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import resource
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ranking_models import metrics, optim
from ranking_models.config import TrialConfig
from ranking_models.data.processing import ProcessedData, Split
from ranking_models.models import RankingModel, build_model

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_VERSION = 1
EXIT_DIVERGED = 3
EXIT_OOM = 4


class TrialFailure(Exception):
    """A trial stopped on purpose; ``record()`` is result.json's failure record."""

    def __init__(
        self,
        kind: str,
        message: str,
        exit_code: int,
        epoch: int | None = None,
        step: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind, self.message, self.exit_code = kind, message, exit_code
        self.epoch, self.step = epoch, step

    def record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "epoch": self.epoch,
            "step": self.step,
            "exit_code": self.exit_code,
        }


@dataclass
class TrainOutcome:
    valid: dict[str, float]
    test: dict[str, float]
    epochs_completed: int
    resumed_from_epoch: int
    samples_per_s: float
    n_params: int
    history: list[dict[str, float]] = field(default_factory=list)


def pick_device() -> torch.device:
    """CUDA when available (override with REA_DEVICE=cpu|cuda:N), else CPU."""
    name = os.environ.get("REA_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


def memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_memory_mb(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base learning rates at a step: linear warmup, then the schedule."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: RankingModel, train: Any) -> optim.Optimizer:
    """One optimizer, two parameter groups: dense (lr_dense) and embedding tables (lr_sparse)."""
    groups = [
        {
            "params": model.dense_parameters(),
            "lr": train.lr_dense,
            "weight_decay": train.weight_decay,
        },
        {
            "params": model.sparse_parameters(),
            "lr": train.lr_sparse,
            "weight_decay": train.weight_decay_sparse,
        },
    ]
    return optim.make(train.optimizer, [g for g in groups if g["params"]], train.momentum)


class _Tensors:
    """A split as tensors on the device."""

    def __init__(self, split: Split, device: torch.device, rows: int | None = None) -> None:
        n = len(split) if rows is None else rows
        self.x_cat = torch.from_numpy(split.x_cat[:n]).to(device)
        self.x_num = torch.from_numpy(split.x_num[:n]).to(device)
        self.y = torch.from_numpy(split.y[:n]).to(device)

    def __len__(self) -> int:
        return len(self.y)


class Trainer:
    """Train one trial. ``emit`` receives each metrics event (a dict, one metrics.jsonl line)."""

    def __init__(
        self,
        config: TrialConfig,
        data: ProcessedData,
        seed: int,
        emit: Callable[[dict[str, Any]], None] = lambda event: None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.config, self.data, self.seed, self.emit = config, data, seed, emit
        self.train_cfg = config.train
        self.device = device or pick_device()
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.t0 = time.monotonic()
        torch.manual_seed(seed)
        self.model = build_model(
            config.model, data.vocab_sizes, len(data.num_names), prior_ctr=data.background_ctr
        ).to(self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.model, self.train_cfg)
        n_rows = max(1, math.ceil(len(data.train) * self.train_cfg.data_fraction))
        self.train = _Tensors(data.train, self.device, rows=n_rows)
        bs = self.train_cfg.batch_size
        # _batches drops a final 1-row batch (batch norm cannot train on it).
        self.steps_per_epoch = n_rows // bs + (1 if n_rows % bs > 1 or n_rows < bs else 0)
        self.total_steps = self.steps_per_epoch * self.train_cfg.epochs
        t = self.train_cfg
        self.autocast = self.device.type == "cuda"
        self.fingerprint = self._fingerprint()
        self.epoch, self.global_step = 0, 0
        self.history: list[dict[str, float]] = []  # valid metrics after each completed epoch
        self.recent_losses: deque[float] = deque(maxlen=t.loss_explosion_window)
        self.train_samples, self.train_time = 0, 0.0
        self.stop_requested = False

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def _fingerprint(self) -> str:
        src = json.dumps(
            {
                "config": self.config.model_dump(mode="json"),
                "data": self.data.fingerprint,
                "seed": self.seed,
            },
            sort_keys=True,
        )
        return hashlib.sha256(src.encode()).hexdigest()

    # ------------------------------------------------------------------ run

    def run(self) -> TrainOutcome:
        resumed_from = self.load_checkpoint()
        for epoch in range(self.epoch, self.train_cfg.epochs):
            self.epoch = epoch
            self._train_epoch(epoch)
            valid = self.evaluate("valid")
            self.history.append(valid)
            self.emit(
                {"event": "eval", "epoch": epoch, "split": "valid", **valid, "time": self.elapsed()}
            )
            self.epoch = epoch + 1
            self.save_checkpoint()
        valid = self.history[-1] if self.history else self.evaluate("valid")
        test = self.evaluate("test")
        self.emit(
            {
                "event": "eval",
                "epoch": self.epoch - 1,
                "split": "test",
                **test,
                "time": self.elapsed(),
            }
        )
        return TrainOutcome(
            valid=valid,
            test=test,
            epochs_completed=self.epoch,
            resumed_from_epoch=resumed_from,
            samples_per_s=self.train_samples / self.train_time if self.train_time > 0 else 0.0,
            n_params=self.n_params,
            history=list(self.history),
        )

    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    def _batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        # The permutation depends on (seed, epoch) only, so a resumed run sees the same batches.
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.train), generator=gen).to(self.device)
        x_cat, x_num, y = self.train.x_cat[perm], self.train.x_num[perm], self.train.y[perm]
        bs = self.train_cfg.batch_size
        for start in range(0, len(y), bs):
            if len(y) - start < 2 and start > 0:  # a 1-row batch breaks batch norm; drop it
                return
            yield x_cat[start : start + bs], x_num[start : start + bs], y[start : start + bs]

    def _train_epoch(self, epoch: int) -> None:
        t = self.train_cfg
        self.model.train()
        window_loss, window_gn, window_n, window_t = 0.0, 0.0, 0, time.monotonic()
        for step_in_epoch, (x_cat, x_num, y) in enumerate(self._batches(epoch)):
            with self._autocast():
                logits = self.model(x_cat, x_num)
            loss = F.binary_cross_entropy_with_logits(logits.float(), y)
            loss_value = float(loss.item())
            self._check_loss(loss_value, epoch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = self._grad_norm(epoch)
            self._set_lr()
            self.optimizer.step()
            self.global_step += 1
            self.train_samples += len(y)
            window_loss, window_gn, window_n = (
                window_loss + loss_value,
                window_gn + grad_norm,
                window_n + 1,
            )
            last = step_in_epoch == self.steps_per_epoch - 1
            if self.global_step % t.log_every_steps == 0 or last:
                now = time.monotonic()
                self.train_time += now - window_t
                batch_rows = window_n * t.batch_size
                self.emit(
                    {
                        "event": "train",
                        "epoch": epoch,
                        "step": self.global_step,
                        "loss": window_loss / window_n,
                        "grad_norm": window_gn / window_n,
                        "samples_per_s": round(batch_rows / max(now - window_t, 1e-9), 1),
                        "memory_mb": round(memory_mb(self.device), 1),
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "time": self.elapsed(),
                    }
                )
                window_loss, window_gn, window_n, window_t = 0.0, 0.0, 0, time.monotonic()
        if window_n:
            self.train_time += time.monotonic() - window_t

    def _set_lr(self) -> None:
        t = self.train_cfg
        factor = lr_factor(self.global_step, self.total_steps, t.warmup_steps, t.lr_schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ instability

    def _check_loss(self, loss: float, epoch: int) -> None:
        t = self.train_cfg
        step = self.global_step
        if not math.isfinite(loss):
            raise TrialFailure(
                "nan_loss", f"training loss is {loss} at step {step}", EXIT_DIVERGED, epoch, step
            )
        if t.loss_explosion_factor is not None and len(self.recent_losses) >= min(
            20, t.loss_explosion_window
        ):
            # A floor on the median keeps a nearly-perfect fit from tripping on small noise.
            median = max(statistics.median(self.recent_losses), 0.1)
            if loss > t.loss_explosion_factor * median:
                raise TrialFailure(
                    "loss_explosion",
                    f"training loss {loss:.4g} exceeds {t.loss_explosion_factor:g} x the running "
                    f"median {median:.4g} at step {step}",
                    EXIT_DIVERGED,
                    epoch,
                    step,
                )
        self.recent_losses.append(loss)

    def _grad_norm(self, epoch: int) -> float:
        t = self.train_cfg
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads)
        value = float(norm.item())
        if not math.isfinite(value) or (
            t.grad_norm_threshold is not None and value > t.grad_norm_threshold
        ):
            raise TrialFailure(
                "grad_explosion",
                f"gradient norm {value:.4g} exceeds the threshold {t.grad_norm_threshold} "
                f"at step {self.global_step}",
                EXIT_DIVERGED,
                epoch,
                self.global_step,
            )
        if t.grad_clip_norm is not None:
            torch.nn.utils.clip_grads_with_norm_(self.params, t.grad_clip_norm, norm)
        return value

    # ------------------------------------------------------------------ evaluation

    @torch.inference_mode()
    def predict(self, split: Split) -> np.ndarray:
        self.model.eval()
        tensors = _Tensors(split, self.device)
        out = []
        bs = self.train_cfg.eval_batch_size
        for start in range(0, len(tensors), bs):
            with self._autocast():
                logits = self.model(
                    tensors.x_cat[start : start + bs], tensors.x_num[start : start + bs]
                )
            out.append(torch.sigmoid(logits.float()).cpu())
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)

    def evaluate(self, split_name: str) -> dict[str, float]:
        split = self.data.split(split_name)
        preds = self.predict(split)
        return metrics.evaluate(split.y, preds, self.data.background_ctr)

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> None:
        if self.checkpoint_dir is None:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device)
            if self.device.type == "cuda"
            else None,
            "history": self.history,
            "recent_losses": list(self.recent_losses),
        }
        fd, tmp = tempfile.mkstemp(dir=self.checkpoint_dir, prefix=".tmp-", suffix=".pt")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(state, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.checkpoint_dir / CHECKPOINT_NAME)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_checkpoint(self) -> int:
        """Restore the last epoch-boundary checkpoint if it belongs to this trial; its epoch."""
        if self.checkpoint_dir is None:
            return 0
        path = self.checkpoint_dir / CHECKPOINT_NAME
        if not path.is_file():
            return 0
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # a torn or foreign file: start over rather than fail
            log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
            return 0
        if (
            state.get("version") != CHECKPOINT_VERSION
            or state.get("fingerprint") != self.fingerprint
        ):
            log.warning("ignoring checkpoint %s: it belongs to another config, data or seed", path)
            return 0
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.history = list(state["history"])
        self.recent_losses.extend(state["recent_losses"])
        log.info("resumed from %s at epoch %d (step %d)", path, self.epoch, self.global_step)
        return self.epoch
