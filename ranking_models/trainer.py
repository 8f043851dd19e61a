"""The training loop: in-memory tensors sliced into batches, per-epoch validation, the best
epoch (by ``train.monitor``) kept and restored, early stopping / rung / pruning stops,
instability detection, epoch-boundary checkpoints. File and process concerns live in
``train.py``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import resource
import secrets
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ranking_models import metrics, optim
from ranking_models.config import TrainConfig, TrialConfig
from ranking_models.contracts import EpochRecord, PruneRule, StopReason
from ranking_models.data.processing import ProcessedData, Split
from ranking_models.models import RankingModel, build_model

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
# 2: best epoch weights, per-epoch train loss; stop_at_epoch left out of the fingerprint
CHECKPOINT_VERSION = 2
EXIT_ERROR = 1
EXIT_DIVERGED = 3
EXIT_OOM = 4
MAXIMISED = frozenset({"auc"})


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
    """What a run reports: valid is the best epoch's, test the best epoch's weights on test."""

    valid: dict[str, float]
    test: dict[str, float]
    epochs_completed: int
    resumed_from_epoch: int
    best_epoch: int
    stopped: StopReason | None
    curve: list[EpochRecord]
    samples_seen: int
    samples_per_s: float
    device_time_s: float
    n_params: int


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


def lr_scale(train: TrainConfig) -> float:
    """Factor of the configured learning rates for batch_size vs reference_batch_size."""
    ratio = train.batch_size / train.reference_batch_size
    if train.lr_batch_scaling == "linear":
        return ratio
    if train.lr_batch_scaling == "sqrt":
        return math.sqrt(ratio)
    return 1.0


def make_optimizer(model: RankingModel, train: TrainConfig) -> optim.AnyOptimizer:
    """Dense parameters (lr_dense) and embedding tables (lr_sparse), both scaled by lr_scale.

    sparse_optimizer "same": one ``train.optimizer`` over both groups; otherwise the tables get
    their own optimizer. Sparse SGD has no momentum: a momentum buffer would keep moving rows
    that are absent from the batch.
    """
    scale = lr_scale(train)
    dense: optim.Group = {
        "params": model.dense_parameters(),
        "lr": train.lr_dense * scale,
        "weight_decay": train.weight_decay,
    }
    sparse: optim.Group = {
        "params": model.sparse_parameters(),
        "lr": train.lr_sparse * scale,
        "weight_decay": train.weight_decay_sparse,
    }
    if train.sparse_optimizer == "same":
        groups = [g for g in (dense, sparse) if g["params"]]
        return optim.make(train.optimizer, groups, train.momentum)
    parts = []
    if dense["params"]:
        parts.append(optim.make(train.optimizer, [dense], train.momentum))
    if sparse["params"]:
        parts.append(optim.make(train.sparse_optimizer, [sparse], momentum=0.0))
    return optim.Chained(parts)


def is_better(value: float, best: float, monitor: str) -> bool:
    """Strictly better (a tie keeps the earlier epoch); auc is maximised, the others minimised."""
    return value > best if monitor in MAXIMISED else value < best


def best_index(history: list[dict[str, float]], monitor: str) -> int | None:
    """The first epoch with the best finite value of the monitored metric, None if none."""
    best: int | None = None
    for i, valid in enumerate(history):
        value = valid.get(monitor, math.nan)
        if math.isfinite(value) and (
            best is None or is_better(value, history[best][monitor], monitor)
        ):
            best = i
    return best


def stop_reason(
    history: list[dict[str, float]], train: TrainConfig, prune: PruneRule | None = None
) -> StopReason | None:
    """Why a run with these completed epochs stops before its horizon (None: it goes on or is
    done). Pure, so a resumed attempt takes the same decision as the one that saved the state."""
    done = len(history)
    if done == 0 or done >= train.epochs:
        return None
    last = done - 1
    if prune is not None and prune.prunes(last, history[last].get(prune.metric, math.nan)):
        return "pruned"
    best = best_index(history, train.monitor)
    patience = train.early_stopping_patience
    if patience is not None and best is not None and last - best >= patience:
        return "early_stopping"
    if train.stop_at_epoch is not None and done >= train.stop_at_epoch:
        return "rung"
    return None


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
    """Train one trial. ``emit`` receives each metrics event (a dict, one metrics.jsonl line).

    Device handling lives here alone: ``device`` placement, bf16 autocast on CUDA, and the
    synchronisation before the device-time clock is read.
    """

    def __init__(
        self,
        config: TrialConfig,
        data: ProcessedData,
        seed: int,
        emit: Callable[[dict[str, Any]], None] = lambda event: None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        device: torch.device | None = None,
        prune: PruneRule | None = None,
    ) -> None:
        self.config, self.data, self.seed, self.emit = config, data, seed, emit
        self.train_cfg = config.train
        self.prune = prune
        self.device = device or pick_device()
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.save_checkpoints = self.checkpoint_dir is not None
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
        # The horizon is `epochs` whatever stop_at_epoch says: a run continued past a rung
        # follows the same schedule as one that never stopped.
        self.total_steps = self.steps_per_epoch * self.train_cfg.epochs
        t = self.train_cfg
        self.autocast = self.device.type == "cuda"
        self.fingerprint = self._fingerprint()
        self.epoch, self.global_step = 0, 0
        self.history: list[dict[str, float]] = []  # valid metrics after each completed epoch
        self.train_losses: list[float] = []  # mean training loss of each completed epoch
        self.best_state: dict[str, torch.Tensor] | None = None  # CPU copy, best epoch's weights
        self.resumed_from = 0
        self.recent_losses: deque[float] = deque(maxlen=t.loss_explosion_window)
        # this attempt's work: samples trained, time on the device, when the work began
        self.train_samples, self.train_time, self.device_time = 0, 0.0, 0.0
        self.work_started: float | None = None  # time.monotonic() at the first timed work

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def best_epoch(self) -> int | None:
        return best_index(self.history, self.train_cfg.monitor)

    @property
    def best_valid(self) -> dict[str, float] | None:
        best = self.best_epoch
        return None if best is None else self.history[best]

    def curve(self) -> list[EpochRecord]:
        return [
            EpochRecord(epoch=i, train_loss=loss, valid=valid)
            for i, (loss, valid) in enumerate(zip(self.train_losses, self.history, strict=True))
        ]

    def _fingerprint(self) -> str:
        config = self.config.model_dump(mode="json")
        del config["train"]["stop_at_epoch"]  # a rung: the same trial, continued
        src = json.dumps(
            {"config": config, "data": self.data.fingerprint, "seed": self.seed}, sort_keys=True
        )
        return hashlib.sha256(src.encode()).hexdigest()

    # ------------------------------------------------------------------ run

    def run(self) -> TrainOutcome:
        """Train from the last checkpoint until the horizon or a stop; test the best epoch."""
        t = self.train_cfg
        self.resumed_from = self.load_checkpoint()
        stopped = stop_reason(self.history, t, self.prune)
        while stopped is None and self.epoch < t.epochs:
            epoch = self.epoch
            with self._timed():
                train_loss = self._train_epoch(epoch)
                valid = self.evaluate("valid")
            self.emit(
                {"event": "eval", "epoch": epoch, "split": "valid", **valid, "time": self.elapsed()}
            )
            self._check_valid(valid, epoch)
            self.history.append(valid)
            self.train_losses.append(train_loss)
            if self.best_epoch == epoch:
                self.best_state = self._state_copy()
            self.epoch = epoch + 1
            self.save_checkpoint()
            stopped = stop_reason(self.history, t, self.prune)
        best = self.best_epoch
        if best is None or self.best_state is None:
            raise RuntimeError("no completed epoch to report (a checkpoint without history?)")
        if stopped is not None:
            log.info("stopped after epoch %d (%s); best epoch %d", self.epoch - 1, stopped, best)
        with self._timed():
            self.model.load_state_dict(self.best_state)
            test = self.evaluate("test")
        self.emit({"event": "eval", "epoch": best, "split": "test", **test, "time": self.elapsed()})
        return TrainOutcome(
            valid=self.history[best],
            test=test,
            epochs_completed=self.epoch,
            resumed_from_epoch=self.resumed_from,
            best_epoch=best,
            stopped=stopped,
            curve=self.curve(),
            samples_seen=self.train_samples,
            samples_per_s=self.train_samples / self.train_time if self.train_time > 0 else 0.0,
            device_time_s=self.device_time,
            n_params=self.n_params,
        )

    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        """Count the block as device time (the device synchronised on both ends)."""
        self._sync()
        if self.work_started is None:
            self.work_started = time.monotonic()
        start = time.perf_counter()
        try:
            yield
            self._sync()
        finally:
            self.device_time += time.perf_counter() - start

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _state_copy(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def _check_valid(self, valid: dict[str, float], epoch: int) -> None:
        name = self.train_cfg.monitor
        value = valid.get(name, math.nan)
        if not math.isfinite(value):
            raise TrialFailure(
                "error",
                f"valid {name} (train.monitor) is {value} after epoch {epoch}: the epoch "
                "cannot be ranked; lower the learning rates or monitor another metric",
                EXIT_ERROR,
                epoch,
                self.global_step,
            )

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

    def _train_epoch(self, epoch: int) -> float:
        """One pass over the train split; the epoch's mean training loss."""
        t = self.train_cfg
        self.model.train()
        epoch_loss, epoch_steps = 0.0, 0
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
            epoch_loss, epoch_steps = epoch_loss + loss_value, epoch_steps + 1
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
        return epoch_loss / max(epoch_steps, 1)

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
        if self.checkpoint_dir is None or not self.save_checkpoints:
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
            "train_losses": self.train_losses,
            "best_epoch": self.best_epoch,
            # the usual case, the last epoch is the best: "model" holds its weights already
            "best_state": None if self.best_epoch == self.epoch - 1 else self.best_state,
            "recent_losses": list(self.recent_losses),
        }
        # 0666 minus the umask: a retry run by a teammate's rea (shared workspace) reads it
        tmp = self.checkpoint_dir / f".tmp-{os.getpid()}-{secrets.token_hex(4)}.pt"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            with os.fdopen(fd, "wb") as fh:
                torch.save(state, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.checkpoint_dir / CHECKPOINT_NAME)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _read_checkpoint(self) -> dict[str, Any] | None:
        if self.checkpoint_dir is None:
            return None
        path = self.checkpoint_dir / CHECKPOINT_NAME
        if not path.is_file():
            return None
        try:
            # to CPU: load_state_dict copies onto the model's device; best_state stays on CPU
            state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn or foreign file: start over rather than fail
            log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
            return None
        if (
            state.get("version") != CHECKPOINT_VERSION
            or state.get("fingerprint") != self.fingerprint
        ):
            log.warning("ignoring checkpoint %s: it belongs to another config, data or seed", path)
            return None
        return state

    def load_checkpoint(self) -> int:
        """Restore the last epoch-boundary checkpoint if it belongs to this trial; its epoch.

        A checkpoint past this attempt's stop_at_epoch is reported as of that rung when the
        best of the rung's epochs is the checkpoint's best epoch (its weights are kept), so the
        report is what a run stopped at the rung gives. Otherwise those weights are gone: the
        attempt trains from scratch and leaves the further checkpoint as it is.
        """
        state = self._read_checkpoint()
        if state is None:
            return 0
        epoch, history = int(state["epoch"]), list(state["history"])
        stop = self.train_cfg.stop_at_epoch
        if stop is not None and epoch > stop:
            # Never overwrite a further checkpoint: a later, higher rung continues from it.
            self.save_checkpoints = False
            if best_index(history[:stop], self.train_cfg.monitor) != state["best_epoch"]:
                log.warning(
                    "checkpoint at epoch %d is past stop_at_epoch %d and does not hold the "
                    "weights of the best of its first %d epochs: training from scratch to "
                    "epoch %d (the checkpoint is kept)",
                    epoch,
                    stop,
                    stop,
                    stop,
                )
                return 0
            epoch, history = stop, history[:stop]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.epoch, self.global_step = epoch, int(state["global_step"])
        self.history = history
        self.train_losses = list(state["train_losses"])[:epoch]
        # None: the checkpoint's last epoch was its best (a CPU copy apart from the model's)
        self.best_state = state["best_state"] or state["model"]
        self.recent_losses.extend(state["recent_losses"])
        log.info(
            "resumed from %s at epoch %d (step %d)", self.checkpoint_dir, epoch, self.global_step
        )
        return epoch
