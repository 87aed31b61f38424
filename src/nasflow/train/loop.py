"""One training loop for the SuperTransformer (SPOS or sandwich) and for a fixed architecture.

- `spos`: one subnet per update, sampled per gene from `random.Random(seed, update)` so every
  micro-batch of an update (and a resumed run) uses the same subnet, as HAT does.
- `sandwich`: the largest, the smallest and `sandwich_random` random subnets per update, their
  gradients accumulated on the same micro-batches before one optimizer step.
- `fixed`: one architecture from scratch. As in HAT it starts from a freshly initialised supernet
  (super-shape initialisation, then slicing) but trains the extracted dense model, which is
  numerically the same and cheaper. Optionally averages the last N saved snapshots.

Every supernet kind (`settings.kind`: HAT or a Mixture-of-Supernets, `nasflow.model.mos`) is
sampled and trained the same way; only the model differs.

Loss: label-smoothed cross-entropy summed over target tokens and divided by their number over
the whole update (fairseq). Logged losses are in bits per target token. `wps` in the curve is
target tokens per second of training (fairseq's definition), validation excluded.

Data-parallel (`settings.gpus x nodes` processes under torchrun, `nasflow.train.distributed`):
an update takes `update_freq x world_size` micro-batches, each rank its contiguous share, all
ranks the same subnet; gradients and token counts are summed over ranks. Rank 0 validates and
writes state, curve and model. World size 1 runs exactly the single-process loop.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasflow.core.device import autocast, environment, resolve_device, resolve_precision
from nasflow.core.io import load_torch, one_line, write_text_atomic
from nasflow.core.logs import progress
from nasflow.core.state import (
    INPUTS_FILE,
    StateFolder,
    TrainStateError,
    rng_state,
    set_rng_state,
)
from nasflow.data.batching import batch_indices, collate
from nasflow.data.prepare import load_split, load_vocab_size, read_manifest
from nasflow.evaluate.loss import prepare_batches, validation_loss
from nasflow.model.checkpoint import save_model
from nasflow.model.loss import label_smoothed_nll_loss
from nasflow.model.mos import build_supernet
from nasflow.model.supertransformer import ModelConfig, SuperTransformer
from nasflow.space.hat import Arch, SearchSpace, get_space
from nasflow.train.distributed import SINGLE, Distributed, check_world_size
from nasflow.train.schedule import make_schedule
from nasflow.train.settings import TrainSettings

CURVE_COLUMNS = (
    "update",
    "epoch",
    "lr",
    "train_loss",
    "train_nll",
    "valid_loss",
    "valid_loss_smallest",
    "wps",
    "wall_s",
)
LN2 = math.log(2.0)
logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished (or deliberately stopped) run reports."""

    updates: int
    finished: bool
    train_seconds: float = 0.0
    target_tokens: int = 0
    valid: dict[str, float] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)

    @property
    def wps(self) -> float:
        return self.target_tokens / self.train_seconds if self.train_seconds else 0.0


def subnets_for_update(
    space: SearchSpace, settings: TrainSettings, update: int, arch: Arch | None
) -> list[Arch]:
    """The architectures trained in update `update` (0-based), deterministic given the seed."""
    if settings.mode == "fixed":
        assert arch is not None
        return [arch]
    rng = random.Random(settings.seed * 1_000_003 + update)
    if settings.mode == "spos":
        return [space.sample(rng)]
    return [space.largest(), space.smallest()] + [
        space.sample(rng) for _ in range(settings.sandwich_random)
    ]


def data_fingerprint(data_dir: Path) -> dict[str, Any]:
    """Hashes of the prepared files training reads (paths and timestamps excluded)."""
    manifest = read_manifest(data_dir)
    outputs = manifest.get("outputs", {})
    return {
        "vocab_size": manifest.get("vocab_size"),
        "files": {k: v for k, v in outputs.items() if k in ("spm.model", "train.npz", "valid.npz")},
    }


# Keys of `state.pt`, checked before resuming (a state missing any is refused, naming them).
STATE_KEYS = (
    "model",
    "optimizer",
    "scaler",
    "rng",
    "updates",
    "epoch",
    "position",
    "curve",
    "train_seconds",
    "target_tokens",
    "window",
)
_SNAPSHOT_HINT = "delete the state folder (or pass --fresh) to start over"


class Trainer:
    """Trains one model on a prepared data folder, resumable from a state folder."""

    def __init__(
        self,
        data_dir: str | Path,
        settings: TrainSettings,
        *,
        space: str,
        model_config: ModelConfig,
        state_dir: str | Path,
        arch: Arch | None = None,
        progress: bool = True,
        dist: Distributed = SINGLE,
    ):
        self.data_dir = Path(data_dir)
        self.settings = settings
        self.space = get_space(space)
        self.model_config = model_config
        self.arch = self.space.validate(arch) if arch is not None else None
        if (settings.mode == "fixed") != (arch is not None):
            raise ValueError("an architecture is required for (and only for) fixed-arch training")
        check_world_size(dist, settings.gpus, settings.nodes)
        self.dist = dist
        self.progress = progress and dist.is_main
        self.vocab_size = load_vocab_size(self.data_dir)
        inputs = {
            "format": 1,
            "data": data_fingerprint(self.data_dir),
            "space": self.space.name,
            "model": model_config.to_dict(),
            "settings": settings.result_relevant(),
            "arch": self.arch.to_dict() if self.arch is not None else None,
        }
        self.state = StateFolder(state_dir, inputs)
        self.device = dist.device if dist.device is not None else resolve_device(settings.device)
        self.dtype = resolve_precision(settings.precision, self.device)

    # ---- setup --------------------------------------------------------------------------------
    def _build_model(self) -> SuperTransformer:
        torch.manual_seed(self.settings.seed)
        if self.arch is not None:
            model = SuperTransformer(self.space, self.vocab_size, self.model_config)
            return model.extract(self.arch).to(self.device)
        mixture = self.settings.mixture()
        model = build_supernet(self.space, self.vocab_size, self.model_config, mixture)
        return model.to(self.device)

    def _optimizer(self, model: SuperTransformer) -> torch.optim.Optimizer:
        s = self.settings
        return torch.optim.AdamW(
            model.parameters(),
            lr=s.warmup_init_lr,
            betas=s.adam_betas,
            eps=s.adam_eps,
            weight_decay=s.weight_decay,
        )

    # ---- the loop -----------------------------------------------------------------------------
    def run(
        self,
        out: str | Path | None = None,
        curve_path: str | Path | None = None,
        *,
        stop_after: int | None = None,
    ) -> TrainResult:
        """Train to `max_updates` (resuming saved state) and write the model and curve.

        `stop_after` ends the run after that many updates without writing outputs, as if the
        process had been killed there (for tests of resumption).
        """
        s = self.settings
        main = self.dist.is_main
        say = logger.info if main else (lambda message: None)
        model = self._build_model()
        optimizer = self._optimizer(model)
        scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)
        schedule = make_schedule(s.to_dict())
        train = load_split(self.data_dir, "train")
        valid_batches = prepare_batches(
            load_split(self.data_dir, "valid"),
            s.max_tokens,
            s.valid_sentences,
            self.device,
            s.max_positions,
        )
        updates, epoch, position = 0, 1, 0
        curve: list[dict[str, Any]] = []
        train_seconds, target_tokens = 0.0, 0
        window: dict[str, float] = {"loss": 0.0, "nll": 0.0, "tokens": 0, "seconds": 0.0}
        self._check_effective_batch()
        saved = self.state.load(required=STATE_KEYS)
        if saved is not None:
            try:
                model.load_state_dict(saved["model"])
                optimizer.load_state_dict(saved["optimizer"])
                scaler.load_state_dict(saved["scaler"])
                updates, epoch, position = saved["updates"], saved["epoch"], saved["position"]
                curve, train_seconds = saved["curve"], saved["train_seconds"]
                target_tokens, window = saved["target_tokens"], saved["window"]
                set_rng_state(saved["rng"])
            except (KeyError, TypeError, ValueError, RuntimeError) as error:
                raise TrainStateError(
                    f"{self.state.state_file}: the resumable state does not fit this run "
                    f"({one_line(error)}); delete the folder (or pass --fresh) to start over"
                ) from None
            say(
                f"resumed from {self.state.state_file} at update {updates} (saved by "
                f"{saved.get('world_size', 1)} process(es) x update_freq "
                f"{saved.get('update_freq', s.effective_update_freq)})"
            )

        def epoch_batches(epoch: int) -> list[np.ndarray]:
            return batch_indices(
                train, s.max_tokens, shuffle=True, seed=s.seed, epoch=epoch,
                max_positions=s.max_positions,
            )  # fmt: skip

        batches = epoch_batches(epoch)
        bar = progress(
            s.max_updates,
            f"train {s.mode}",
            unit="update",
            initial=updates,
            disable=not self.progress,
            log=logger,
        )
        model.train()
        while updates < s.max_updates:
            if stop_after is not None and updates >= stop_after:
                bar.close()
                return TrainResult(updates, False, train_seconds, target_tokens, curve=curve)
            group = []
            while len(group) < s.effective_update_freq:
                if position >= len(batches):
                    epoch, position = epoch + 1, 0
                    batches = epoch_batches(epoch)
                group.append(batches[position])
                position += 1
            started = time.perf_counter()
            lr = schedule(updates)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            loss, nll, ntokens = self._update(model, optimizer, scaler, group, train, updates)
            updates += 1
            elapsed = time.perf_counter() - started
            train_seconds += elapsed
            target_tokens += ntokens
            for key, value in (("loss", loss), ("nll", nll), ("tokens", ntokens)):
                window[key] += value
            window["seconds"] += elapsed
            bar.update(1)
            validate = s.valid_interval_updates and updates % s.valid_interval_updates == 0
            log_now = updates % s.log_interval_updates == 0 or updates == s.max_updates
            if main and (log_now or validate or updates == s.max_updates):
                row = self._curve_row(updates, epoch, lr, window, train_seconds)
                if validate or updates == s.max_updates:
                    row.update(self._validate(model, valid_batches))
                    model.train()
                curve.append(row)
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", lr=f"{lr:.2e}")
                say(", ".join(f"{k}={v}" for k, v in row.items() if v != ""))
                window = {"loss": 0.0, "nll": 0.0, "tokens": 0, "seconds": 0.0}
            if updates % s.save_interval_updates == 0 or updates == s.max_updates:
                progress_state = {
                    "updates": updates,
                    "epoch": epoch,
                    "position": position,
                    "curve": curve,
                    "train_seconds": train_seconds,
                    "target_tokens": target_tokens,
                    "window": window,
                    "world_size": self.dist.world_size,
                    "update_freq": s.update_freq,
                }
                if main:
                    self._save(model, optimizer, scaler, progress_state)
                    write_curve(self.state.path / "curve.csv", curve)
                self.dist.barrier()
        bar.close()
        if not main:  # rank 0 validates and writes the outputs
            self.dist.barrier()
            return TrainResult(updates, True, train_seconds, target_tokens, curve=curve)
        final = self._final_model(model)
        if final is model and curve and curve[-1]["update"] == updates and curve[-1]["valid_loss"]:
            # The last update was just validated; only an averaged model needs a new pass.
            valid = {k: curve[-1][k] for k in ("valid_loss", "valid_loss_smallest") if curve[-1][k]}
        else:
            valid = self._validate(final, valid_batches)
        result = TrainResult(updates, True, train_seconds, target_tokens, valid, curve)
        if out is not None:
            meta = {
                "mode": s.mode,
                "world_size": self.dist.world_size,
                "kind": s.kind,
                "settings": s.to_dict(),
                "arch": self.arch.to_dict() if self.arch is not None else None,
                "updates": updates,
                "train_seconds": round(train_seconds, 3),
                "wps": round(result.wps, 1),
                "valid": valid,
                "fingerprint": self.state.key,
                "environment": environment(self.device, self.dtype),
            }
            save_model(out, final, meta)
        if curve_path is not None:
            write_curve(curve_path, curve)
        self.dist.barrier()
        return result

    def _check_effective_batch(self) -> None:
        """Refuse saved state of another effective batch (`update_freq x gpus x nodes`) with a
        message naming these keys; a changed world size that keeps it resumes."""
        s = self.settings
        try:
            saved = json.loads((self.state.path / INPUTS_FILE).read_text(encoding="utf-8"))
            saved_freq = saved["settings"]["update_freq"]
        except (OSError, ValueError, KeyError, TypeError):
            return  # no state yet, or one StateFolder.check refuses with its own reason
        if saved_freq != s.effective_update_freq:
            raise TrainStateError(
                f"{self.state.path}: the resumable state takes {saved_freq} micro-batches per "
                f"update, this run {s.effective_update_freq} (update_freq {s.update_freq} x gpus "
                f"{s.gpus} x nodes {s.nodes}); a run resumes across a changed world size only "
                "with the same update_freq x gpus x nodes: set update_freq, gpus or nodes back, "
                "or delete the folder (or pass --fresh) to start over"
            )

    def _update(
        self,
        model: SuperTransformer,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        group: list[np.ndarray],
        train: Any,
        update: int,
    ) -> tuple[float, float, int]:
        """One optimizer step over `group` micro-batches for every subnet of this update (this
        rank's share of them; the loss over the whole group's target tokens)."""
        s = self.settings
        dist = self.dist
        batches = [collate(train, indices).to(self.device) for indices in dist.shard(group)]
        ntokens = sum(batch.ntokens for batch in batches)
        subnets = subnets_for_update(self.space, s, update, self.arch)
        if dist.active:
            (total,) = dist.sum([ntokens])
            ntokens = int(total)
            plan = f"{update} {group[0][:4].tolist()} " + " ".join(a.id for a in subnets)
            if not dist.same_on_every_rank(plan):
                raise RuntimeError(f"update {update}: the ranks disagree on the subnet or batches")
        loss_total, nll_total = 0.0, 0.0
        for arch in subnets:
            if model.is_supernet:
                model.set_arch(arch)
            for batch in batches:
                with autocast(self.device, self.dtype):
                    logits = model(batch.src_tokens, batch.prev_output_tokens)
                loss, nll = label_smoothed_nll_loss(logits, batch.target, s.label_smoothing)
                scaler.scale(loss / ntokens).backward()
                loss_total += float(loss.detach())
                nll_total += float(nll.detach())
        dist.sum_gradients(model.parameters())
        loss_total, nll_total = dist.sum([loss_total, nll_total])
        if s.clip_norm > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        n = len(subnets)
        return loss_total / n, nll_total / n, ntokens

    def _curve_row(
        self, update: int, epoch: int, lr: float, window: dict[str, float], wall: float
    ) -> dict[str, Any]:
        tokens = max(window["tokens"], 1)
        return {
            "update": update,
            "epoch": epoch,
            "lr": f"{lr:.6g}",
            "train_loss": round(window["loss"] / tokens / LN2, 4),
            "train_nll": round(window["nll"] / tokens / LN2, 4),
            "valid_loss": "",
            "valid_loss_smallest": "",
            "wps": round(window["tokens"] / window["seconds"], 1) if window["seconds"] else 0.0,
            "wall_s": round(wall, 2),
        }

    def _validate(self, model: SuperTransformer, batches: list) -> dict[str, float]:
        """Validation loss in bits: the model, or the largest and smallest subnets (HAT)."""
        eps = self.settings.label_smoothing
        if not model.is_supernet:
            result = validation_loss(
                model, None, label_smoothing=eps, batches=batches, dtype=self.dtype
            )
            return {"valid_loss": round(result.loss_bits, 4)}
        previous = model.arch
        scores = {}
        for key, arch in (
            ("valid_loss", self.space.largest()),
            ("valid_loss_smallest", self.space.smallest()),
        ):
            model.set_arch(arch)
            result = validation_loss(
                model, None, label_smoothing=eps, batches=batches, dtype=self.dtype
            )
            scores[key] = round(result.loss_bits, 4)
        assert previous is not None
        model.set_arch(previous)
        return scores

    def _snapshot_dir(self) -> Path:
        return self.state.path / "snapshots"

    def _save(
        self,
        model: SuperTransformer,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        progress_state: dict[str, Any],
    ) -> None:
        if self.settings.mode == "fixed" and self.settings.average_last > 1:
            self._snapshot(model, progress_state["updates"])
        self.state.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rng_state(),
                **progress_state,
            }
        )

    def _snapshot(self, model: SuperTransformer, updates: int) -> None:
        folder = self._snapshot_dir()
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(
            {k: v.detach().cpu() for k, v in model.state_dict().items()},
            folder / f"update{updates:08d}.pt",
        )
        snapshots = sorted(folder.glob("update*.pt"))
        for old in snapshots[: -self.settings.average_last]:
            old.unlink()

    def _final_model(self, model: SuperTransformer) -> SuperTransformer:
        """The trained model, or the average of the last `average_last` snapshots."""
        n = self.settings.average_last
        if self.settings.mode != "fixed" or n <= 1:
            return model
        snapshots = sorted(self._snapshot_dir().glob("update*.pt"))[-n:]
        states = [
            load_torch(path, "weight snapshot", error=TrainStateError, hint=_SNAPSHOT_HINT)
            for path in snapshots
        ]
        averaged = {
            key: sum(state[key].double() for state in states) / len(states) for key in states[0]
        }
        final = SuperTransformer(self.space, self.vocab_size, self.model_config, layout=self.arch)
        final.load_state_dict({k: v.to(states[0][k].dtype) for k, v in averaged.items()})
        return final.to(self.device)


def write_curve(path: str | Path, curve: list[dict[str, Any]]) -> None:
    """The training curve as CSV (one row per logged update)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(curve)
    write_text_atomic(path, buffer.getvalue())
