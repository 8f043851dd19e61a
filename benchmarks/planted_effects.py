"""Planted effects of the synthetic generator: does the change that reaches each one help?

For each effect, trains the default DCN-v2 config and the config that reaches the effect
(quantile buckets, an explicit cross, 3x the epochs) on synthetic data with only that effect
planted, with the real trainer, over a few seeds. Prints valid AUC / log loss, then as its
LAST line one JSON object.

    python benchmarks/planted_effects.py [--rows 50000] [--vocab-size 30] [--n-categorical 4]
                                         [--seeds 0,1] [--effects cross,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

from ranking_models.config import apply_delta, default_config, validate_config
from ranking_models.data.processing import load_data
from ranking_models.train import configure_threads
from ranking_models.trainer import Trainer


def reaching_delta(effect: str, data: Any, epochs: int) -> dict[str, Any]:
    """The config change that reaches the effect (column names: the generator's last ones)."""
    if effect == "nonmonotone_numeric":
        return {"features.numeric_buckets": 32}
    if effect == "cross":
        return {"features.crosses": [data.cat_names[-2:]]}
    return {"train.epochs": 3 * epochs}


def run(effect: str, spec: dict[str, Any], seeds: list[int], family: str) -> dict[str, Any]:
    spec = {**spec, "effects": [effect]}
    base = default_config(family)
    plain = load_data(spec)
    delta = reaching_delta(effect, plain, base["train"]["epochs"])
    out: dict[str, Any] = {"delta": delta}
    for label, raw in (("default", base), ("reached", apply_delta(base, delta))):
        config = validate_config(raw)
        data = load_data(spec, features=config.features)
        aucs, losses, best_aucs, best_losses, times = [], [], [], [], []
        for seed in seeds:
            t0 = time.monotonic()
            outcome = Trainer(config, data, seed).run()
            # the last epoch's metrics, and the best epoch's (the trainer restores and
            # reports the best epoch by its monitor)
            last = outcome.curve[-1].valid
            aucs.append(last["auc"])
            losses.append(last["logloss"])
            best_aucs.append(outcome.valid["auc"])
            best_losses.append(outcome.valid["logloss"])
            times.append(time.monotonic() - t0)
        out[label] = {
            "auc": round(statistics.mean(aucs), 4),
            "logloss": round(statistics.mean(losses), 4),
            "best_epoch_auc": round(statistics.mean(best_aucs), 4),
            "best_epoch_logloss": round(statistics.mean(best_losses), 4),
            "aucs": [round(a, 4) for a in aucs],
            "train_s": round(statistics.mean(times), 1),
        }
    out["auc_gain"] = round(out["reached"]["auc"] - out["default"]["auc"], 4)
    out["logloss_gain"] = round(out["default"]["logloss"] - out["reached"]["logloss"], 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    # A small vocabulary keeps the base data from overfitting within 3x the epochs.
    parser.add_argument("--vocab-size", type=int, default=30)
    parser.add_argument("--n-categorical", type=int, default=4)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--family", default="dcn_v2")
    parser.add_argument("--effects", default="nonmonotone_numeric,cross,slow_interaction")
    args = parser.parse_args()
    configure_threads()
    seeds = [int(s) for s in args.seeds.split(",")]
    spec = {
        "name": "synthetic",
        "n_rows": args.rows,
        "vocab_size": args.vocab_size,
        "n_categorical": args.n_categorical,
    }
    results: dict[str, Any] = {"spec": spec}
    for effect in args.effects.split(","):
        results[effect] = run(effect, spec, seeds, args.family)
        r = results[effect]
        d, g = r["default"], r["reached"]
        print(
            f"{effect:20s} default AUC {r['default']['auc']:.4f} logloss "
            f"{r['default']['logloss']:.4f} | {json.dumps(r['delta'])}: AUC "
            f"{r['reached']['auc']:.4f} logloss {r['reached']['logloss']:.4f} "
            f"(AUC {r['auc_gain']:+.4f}; best epoch: AUC {d['best_epoch_auc']:.4f} "
            f"-> {g['best_epoch_auc']:.4f}, logloss "
            f"{d['best_epoch_logloss']:.4f} -> {g['best_epoch_logloss']:.4f})",
            flush=True,
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
