"""The training loop: ``train(config) -> RunResult`` — one loop a reader can hold in their head.

    for step in range(start, total):
        batch   = minibatch k of epoch e (order from a generator seeded by (seed, e): resumable at any step)
        lr, ε, γ = schedules at step           (warm-up + cosine; DESIGN §3 ε anneal; DESIGN §2 surrogate slope)
        loss    = task loss (+ write-rate penalty, DESIGN §2)
        AdamW step with gradient clipping
        every eval_every steps: validation metric -> metrics.jsonl / metrics.csv, "last" checkpoint,
                                "best" checkpoint (only once ε has reached its final value), early stop

Resuming from the "last" checkpoint continues exactly: the weights, the optimizer state, the RNG states, the
loop counters and the metrics history are restored, and the data order and schedules depend on the step
alone. Ctrl-C finishes the current step, saves "last" and exits. ``evaluate`` scores a model on any split at
any length, in memory-bounded chunks.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..nets.model import ModelConfig, SequenceModel
from ..registry import model_units
from . import checkpoint as ckpt
from . import distributed
from .checkpoint import CheckpointError
from .config import TrainConfig, steps_per_epoch
from .schedules import eps_schedule, gamma_at, lr_at

METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
SUMMARY = "summary.json"
METRIC_COLUMNS = ("step", "epoch", "train_loss", "val_metric", "write_rate", "lr", "eps", "gamma", "best",
                  "elapsed_s")

#: config fields that may differ when resuming (they do not change the mathematics of the run)
RESUME_SAFE_FIELDS = ("device", "bf16", "eval_batch_size", "target_metric", "out_dir")

#: evaluation chunks hold at most this many activations (batch x time x d_model) at once
EVAL_MAX_ELEMENTS = 2**23


@dataclass
class RunResult:
    """What a run produced. ``status``: "completed", "target" (early stop) or "stopped" (``stop_at``)."""

    run_dir: str
    task: str
    model: str
    seed: int
    metric_name: str
    higher_is_better: bool
    status: str
    steps: int
    total_steps: int
    best_step: int | None
    best_val: float | None
    final_val: float | None
    test_metric: float | None
    train_length: int
    wall_time_s: float
    config: dict = field(default_factory=dict)
    world_size: int = 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- building blocks -----------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without a GPU is an error. In a torchrun job, CUDA
    means this rank's GPU (``LOCAL_RANK``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch.cuda.is_available() is False; "
                         "use device 'auto' or 'cpu'")
    if name == "cuda":
        d = distributed.current()
        return torch.device("cuda", d.local_rank) if d.enabled else torch.device("cuda")
    return torch.device(name)


def build_task(config: TrainConfig):
    """The task of a run; the data seed is the run's seed."""
    from ..tasks import get_task

    return get_task(config.task, length=config.length, seed=config.seed, **config.task_options)


def model_config(config: TrainConfig, task) -> ModelConfig:
    """The ModelConfig for ``task``: per-step head for per-step readouts, last-step head otherwise."""
    tokens = task.input_kind == "tokens"
    units = model_units(config.model)
    if task.readout == "per_step" and config.head is not None:
        raise ValueError(f"task {task.name!r} is scored at every step, so it always uses the per-step head; "
                         f"head={config.head!r} applies only to tasks read out once per sequence")
    return ModelConfig(
        input_size=task.input_size,
        output_size=task.output_size,
        units=units,
        d_model=config.d_model,
        n_layers=config.n_layers,
        combine=config.combine,
        mlp_ratio=config.mlp_ratio,
        dropout=config.dropout,
        norm=config.norm,
        head="per_step" if task.readout == "per_step" else (config.head or "last"),
        vocab_size=task.input_size if tokens else None,
        unit_kwargs={u: dict(o) for u, o in config.unit_options.items() if u in units},
    )


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (biases, norms, per-unit vectors are not decayed)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.99))


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA when asked for (and supported); a no-op elsewhere."""
    if device.type == "cuda" and bf16 and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffled order of the training set in ``epoch``: a function of (seed, epoch) only."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


# -- evaluation --------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_data(model: SequenceModel, task, data, batch_size: int = 256, device=None, bf16: bool = True,
                  max_elements: int = EVAL_MAX_ELEMENTS, dist: distributed.Dist | None = None) -> float:
    """The task metric of ``model`` on ``data``, in chunks of at most ``batch_size`` sequences and about
    ``max_elements`` activations (so 100x-length sequences fit in memory). Restores the training mode.

    In a torchrun job (``dist``, default: the current process group) each rank scores its slice of ``data``
    and the parts are summed over ranks, so every rank must call it and every rank gets the same metric."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dist = distributed.current() if dist is None else dist
    if dist.enabled:
        data = data[dist.shard(len(data))]
    per_seq = data.length * model.config.d_model * max(1, len(model.config.units))
    chunk = max(1, min(batch_size, max_elements // per_seq))
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(data), chunk):
            part = data[start:start + chunk].to(device)
            with autocast(device, bf16):
                pred = model(part.x)
            t, c = task.metric_parts(pred.float(), part)
            total, count = total + t, count + c
    finally:
        model.train(was_training)
    total, count = dist.all_sum([total, count], device)
    return total / count if count else float("nan")


def evaluate(model: SequenceModel, task, split: str = "test", length: int | None = None, n: int | None = None,
             batch_size: int = 256, device=None, bf16: bool = True) -> float:
    """The task metric on ``split`` at sequence ``length`` (default: the task's own), e.g. 10x the training
    length to test length generalisation; ``n`` sequences (default: the task's size for the split)."""
    return evaluate_data(model, task, task.dataset(split, n=n, length=length), batch_size, device, bf16)


# -- runs on disk ------------------------------------------------------------------------------------------


def load_run(run_dir, which: str = "best", device: str = "auto"):
    """Rebuild (model, task, config, checkpoint state) from a run folder. ``which``: "best", "last", or
    "auto" (best if there is one, else last). The model has the checkpoint's ε and γ set."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {str(run_dir)!r} does not exist")
    if which == "auto":
        which = "best" if ckpt.checkpoint_path(run_dir, "best").is_file() else "last"
    c = ckpt.load_checkpoint(ckpt.checkpoint_path(run_dir, which))
    c.state["checkpoint"] = which
    config = _saved_config(c)
    task = build_task(config)
    model = SequenceModel(model_config(config, task))
    _load_weights(model, c)
    sched = _saved_schedule(c)
    if sched.get("eps") is not None:
        model.set_eps(sched["eps"])
    if sched.get("gamma") is not None:
        model.set_gamma(sched["gamma"])
    model.to(resolve_device(device)).eval()
    return model, task, config, c.state


def _saved_config(c) -> TrainConfig:
    """The TrainConfig a checkpoint was written with; a missing or invalid one is a CheckpointError."""
    saved = c.state.get("config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint {str(c.path)!r} is damaged: it holds no training config")
    try:
        return TrainConfig.from_dict(saved)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {str(c.path)!r} holds an invalid training config: {e}") from None


def _saved_schedule(c) -> dict:
    sched = c.state.get("schedule", {})
    ok = isinstance(sched, dict) and all(
        sched.get(k) is None or (isinstance(sched[k], (int, float)) and not isinstance(sched[k], bool))
        for k in ("eps", "gamma"))
    if not ok:
        raise CheckpointError(f"checkpoint {str(c.path)!r} is damaged: its 'schedule' entry is {sched!r}")
    return sched


def _load_weights(model, c, optimizer=None) -> None:
    """Load a checkpoint's weights (and optimizer state); a mismatch is a CheckpointError naming the file."""
    try:
        model.load_state_dict(c.model_state())
        if optimizer is not None:
            optimizer.load_state_dict(c.optimizer_state())
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {str(c.path)!r} does not fit its own model config: "
                              f"{' '.join(str(e).split())[:300]}") from None


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; no update was applied and the last good checkpoint is untouched."""


def _divergence_report(model, value: float, step: int, run_dir) -> str:
    grads = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    values = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    show = lambda names: ", ".join(names[:8]) + (f" (+{len(names) - 8} more)" if len(names) > 8 else "")  # noqa: E731
    return (f"the loss became {value} at step {step}; "
            f"parameters with non-finite gradients: {show(grads) or 'none'}; "
            f"with non-finite values: {show(values) or 'none'}. No update was applied and the last good "
            f"checkpoint in {run_dir} is kept: resume it with a lower --lr or a smaller --grad-clip.")


# -- the loop ----------------------------------------------------------------------------------------------


class _DeferredInterrupt:
    """While active in the main thread, a first Ctrl-C only sets ``requested`` (the loop saves and stops at
    the next step boundary); a second one raises KeyboardInterrupt at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


class _Log:
    """Plain logging: one line per evaluation, through tqdm when a bar is shown."""

    def __init__(self, quiet: bool, bar):
        self.quiet, self.bar = quiet, bar

    def __call__(self, msg: str) -> None:
        if self.quiet:
            return
        if self.bar is not None and not self.bar.disable:
            self.bar.write(msg)
        else:
            print(msg, flush=True)


def _progress_bar(total: int, initial: int, desc: str, enabled: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the "train" extra
        return None
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                unit="step", leave=True)


def _check_resumable(config: TrainConfig, saved: dict, path: Path) -> None:
    current = config.to_dict()
    diff = [k for k in current if k not in RESUME_SAFE_FIELDS and current[k] != saved.get(k)]
    if diff:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in diff)
        raise CheckpointError(f"cannot resume {str(path)!r} with a different config ({detail}); "
                              f"start a new run folder instead")


def _write_csv(run_dir: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in METRIC_COLUMNS})
    ckpt.atomic_write(run_dir / METRICS_CSV, buf.getvalue().encode())


def _read_jsonl(path: Path) -> list[dict]:
    """The metrics rows of ``path`` up to the first line that is not a JSON object (a line cut by a crash:
    the checkpoint's row count decides what is kept); bytes that are not text are a CheckpointError."""
    rows = []
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"metrics file {str(path)!r} is not UTF-8 text (damaged); restore it or "
                                  f"delete it to resume without the metrics history") from None
        for line in text.splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break
                if not isinstance(row, dict):
                    break
                rows.append(row)
    return rows


def _is_better(value: float, best: float | None, higher: bool) -> bool:
    if value is None or math.isnan(value):
        return False
    return best is None or (value > best if higher else value < best)


def _reached(value: float, target: float | None, higher: bool) -> bool:
    return target is not None and value is not None and (value >= target if higher else value <= target)


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False, quiet: bool = False,
          progress: bool | None = None, stop_at: int | None = None) -> RunResult:
    """Train a model on a task as ``config`` says; the run folder is ``config.run_dir``.

    Args:
        resume: continue from the folder's "last" checkpoint (same config required, bar the fields in
            ``RESUME_SAFE_FIELDS``); the result is identical to an uninterrupted run.
        overwrite: start afresh even if the folder already holds a run (its checkpoints are replaced).
        quiet: no log lines (and no progress bar unless ``progress=True``).
        progress: show a tqdm bar (default: when stderr is a terminal and not ``quiet``).
        stop_at: stop (with a "last" checkpoint) once this many steps are done, as if interrupted there —
            the schedules still span the whole run, so a later ``resume`` continues it.

    Under ``torchrun`` every rank calls this and the run is data-parallel (DDP, :mod:`mru.train.distributed`):
    ``config.batch_size`` is the global batch, rank 0 alone logs and writes, and every rank returns the result.
    """
    t_start = time.perf_counter()
    run_dir = config.run_dir
    last_path = ckpt.checkpoint_path(run_dir, "last")
    if not resume and last_path.is_file() and not overwrite:
        raise FileExistsError(f"run folder {str(run_dir)!r} already holds a run (train with resume=True to "
                              f"continue it, or overwrite=True, or another out_dir)")
    dist, device = distributed.setup(config.device)
    main = dist.is_main
    if not main:
        quiet, progress = True, False

    # -- data, model, optimizer ------------------------------------------------------------------------
    task = build_task(config)
    train_data = task.dataset("train", n=config.n_train).to(device)
    val_data = task.dataset("val", n=config.n_val)
    total = config.total_steps(len(train_data))
    per_epoch = steps_per_epoch(len(train_data), config.batch_size)
    batch_size = min(config.batch_size, len(train_data))
    if batch_size < dist.world_size:
        raise ValueError(f"the global batch ({batch_size} sequences) is smaller than the {dist.world_size} "
                         f"processes of this torchrun job; raise batch_size to at least {dist.world_size}")
    units = model_units(config.model)
    eps_sched = eps_schedule(config, units, total)

    torch.manual_seed(config.seed)
    model = SequenceModel(model_config(config, task)).to(device)
    optimizer = make_optimizer(model, config)
    has_memory = bool(model.memory_units())
    model.track_write_rate(has_memory)

    step, rows = 0, []
    loop = {"loss_sum": 0.0, "loss_count": 0, "rate_sum": 0.0, "best_val": None, "best_step": None,
            "elapsed_s": 0.0}
    if resume:
        c = ckpt.load_checkpoint(last_path)
        _check_resumable(config, _saved_config(c).to_dict(), last_path)
        _saved_schedule(c)
        _load_weights(model, c, optimizer)
        step = int(c.state["step"])
        loop.update(c.state["loop"])
        rows = _read_jsonl(run_dir / METRICS_JSONL)[: int(c.state["metrics_rows"])]
        ckpt.set_rng_state(c.state["rng"])
    elif main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("best", "last"):  # a fresh run never inherits an old checkpoint
            ckpt.remove_checkpoint(run_dir, name)
        (run_dir / SUMMARY).unlink(missing_ok=True)
    # DDP's constructor is a collective: past it, every rank has read what it needed, so rank 0 may write
    net = distributed.wrap(model, dist, device)
    if main:
        ckpt.atomic_write(run_dir / "config.json", (json.dumps(config.to_dict(), indent=1) + "\n").encode())
        with open(run_dir / METRICS_JSONL, "w") as f:  # the history as of the checkpoint
            f.writelines(json.dumps(r) + "\n" for r in rows)
        _write_csv(run_dir, rows)

    show = (sys.stderr.isatty() and not quiet) if progress is None else progress
    bar = _progress_bar(total, step, f"{config.task} {config.model}", show)
    log = _Log(quiet, bar)
    if not resume:
        n_params = sum(p.numel() for p in model.parameters())
        procs = f" x {dist.world_size} processes" if dist.enabled else ""
        log(f"{config.task} / {config.model}: {n_params:,} parameters, {total} steps of batch {batch_size}, "
            f"length {task.length}, device {device.type}{procs}, run folder {run_dir}")
    else:
        log(f"resuming {run_dir} at step {step}/{total}")

    def schedule_at(s: int) -> dict:
        return {"lr": lr_at(s, config.lr, config.min_lr, config.warmup, total),
                "eps": eps_sched(s) if eps_sched is not None else None,
                "gamma": gamma_at(s, config.gamma_start, config.gamma_end, total) if has_memory else None}

    def settled(s: int) -> bool:
        return eps_sched is None or eps_sched.settled(s)

    def save(*names: str) -> None:
        """Write checkpoints ``names`` (e.g. "last", "best") of the current state (rank 0 only)."""
        if not main:
            return
        tensors, meta = ckpt.pack(model, optimizer)
        blob = ckpt.serialize(tensors)
        state = {"step": step, "total_steps": total, "config": config.to_dict(), "task": task.config(),
                 "model_config": model.config.to_dict(), "metric_name": task.metric_name,
                 "higher_is_better": task.higher_is_better, "metrics_rows": len(rows),
                 "rng": ckpt.rng_state(boundary_rng[0]),
                 "schedule": schedule_at(max(step - 1, 0)),  # the values the weights were last trained with
                 "optimizer": meta, "loop": dict(loop)}
        for name in names:
            ckpt.save_checkpoint(run_dir, name, tensors, state, blob)

    def evaluate_and_checkpoint() -> bool:
        """Validation, metrics row, checkpoints; True when the target metric is reached."""
        val = evaluate_data(model, task, val_data, config.eval_batch_size, device, config.bf16, dist=dist)
        eligible = settled(step - 1)
        is_best = eligible and _is_better(val, loop["best_val"], task.higher_is_better)
        if is_best:
            loop["best_val"], loop["best_step"] = val, step
        sched = schedule_at(step - 1)
        loop["elapsed_s"] += time.perf_counter() - t_mark[0]
        t_mark[0] = time.perf_counter()
        row = {"step": step, "epoch": round(step / per_epoch, 4),
               "train_loss": loop["loss_sum"] / max(loop["loss_count"], 1),
               "val_metric": val,
               "write_rate": loop["rate_sum"] / max(loop["loss_count"], 1) if has_memory else None,
               "lr": sched["lr"], "eps": sched["eps"], "gamma": sched["gamma"], "best": is_best,
               "elapsed_s": round(loop["elapsed_s"], 3)}
        loop["loss_sum"], loop["loss_count"], loop["rate_sum"] = 0.0, 0, 0.0
        rows.append(row)
        if main:
            with open(run_dir / METRICS_JSONL, "a") as f:
                f.write(json.dumps(row) + "\n")
            _write_csv(run_dir, rows)
        save("last", "best") if is_best else save("last")
        mark = " *" if is_best else ""
        eps_txt = f" eps {sched['eps']:.3f}" if sched["eps"] is not None else ""
        log(f"step {step:>6}/{total}  loss {row['train_loss']:.4f}  val {task.metric_name} {val:.4f}{mark}"
            f"{eps_txt}  lr {sched['lr']:.2e}  {loop['elapsed_s']:.1f}s")
        if bar is not None:
            bar.set_postfix_str(f"loss {row['train_loss']:.4f} val {val:.4f}")
        return eligible and _reached(val, config.target_metric, task.higher_is_better)

    # -- the loop ------------------------------------------------------------------------------------------
    t_mark = [time.perf_counter()]
    # the RNG states at the last step boundary: an interrupted step's forward pass may already have drawn
    # dropout masks, and a checkpoint must hold the states from before it
    boundary_rng = [ckpt.capture_rng()]
    order, order_epoch = None, -1
    in_update = False
    loss_acc = torch.zeros((), dtype=torch.float64, device=device)
    rate_acc = torch.zeros((), dtype=torch.float64, device=device)

    def flush_accumulators():
        nonlocal loss_acc, rate_acc
        loop["loss_sum"] += float(loss_acc)
        loop["rate_sum"] += float(rate_acc)
        loss_acc.zero_()
        rate_acc.zero_()

    status = "completed"
    model.train()
    stop_all = False  # distributed: a Ctrl-C on any rank, agreed by all ranks at the last step's all_reduce
    try:
        with _DeferredInterrupt() as interrupt:
            while step < total:
                if (stop_all if dist.enabled else interrupt.requested):
                    raise KeyboardInterrupt
                if stop_at is not None and step >= stop_at:
                    status = "stopped"
                    break
                epoch, k = divmod(step, per_epoch)
                if epoch != order_epoch:
                    order, order_epoch = epoch_order(config.seed, epoch, len(train_data)).to(device), epoch
                index = order[k * batch_size:(k + 1) * batch_size]
                if dist.enabled:  # this rank's slice of the global batch, and the global batch's loss count
                    global_count, global_batch = task.loss_count(train_data[index]), len(index)
                    index = index[dist.shard(len(index))]
                batch = train_data[index]
                sched = schedule_at(step)
                for g in optimizer.param_groups:
                    g["lr"] = sched["lr"]
                if sched["eps"] is not None:
                    model.set_eps(sched["eps"])
                if sched["gamma"] is not None:
                    model.set_gamma(sched["gamma"])

                with autocast(device, config.bf16):
                    pred = net(batch.x)
                    if dist.enabled:  # DDP averages gradients over ranks: scale to the global mean loss
                        loss_sum, _ = task.loss_parts(pred.float(), batch)
                        loss = loss_sum * (dist.world_size / max(global_count, 1))
                    else:
                        loss = task.loss(pred.float(), batch)
                objective = loss
                rate = model.write_rate() if has_memory else None
                if rate is not None and dist.enabled:  # DDP's mean over ranks of this is the global rate
                    rate = rate * (dist.world_size * len(batch) / global_batch)
                if rate is not None and config.write_rate_penalty > 0:
                    if config.write_rate_norm == "l1":
                        penalty = rate
                    elif not dist.enabled:
                        penalty = rate.square()
                    else:  # (global rate)^2 as a rank term whose mean has its value and its gradient
                        g = rate.detach() / dist.world_size
                        torch.distributed.all_reduce(g)
                        penalty = 2 * g * rate - g * g
                    objective = loss + config.write_rate_penalty * penalty
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                if dist.enabled:  # the logged values are means over ranks; the flags reach every rank
                    zero = torch.zeros((), dtype=torch.float64, device=device)
                    parts = torch.stack([
                        objective.detach().double(), loss.detach().double(),
                        rate.detach().double() if rate is not None else zero,
                        zero + float(interrupt.requested)]) / dist.world_size
                    torch.distributed.all_reduce(parts)
                    objective, loss = parts[0], parts[1]
                    rate = parts[2] if rate is not None else None
                    stop_all = bool(parts[3] > 0)
                if not torch.isfinite(objective.detach()):
                    raise TrainingDiverged(_divergence_report(model, float(objective.detach()), step + 1, run_dir))
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                in_update = True
                optimizer.step()
                step += 1
                loss_acc += loss.detach().double()
                if rate is not None:
                    rate_acc += rate.detach().double()
                loop["loss_count"] += 1
                boundary_rng[0] = ckpt.capture_rng()
                in_update = False

                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0 and not bar.disable:
                        bar.set_postfix_str(f"loss {float(loss):.4f}" + (
                            f" val {rows[-1]['val_metric']:.4f}" if rows else ""))
                if step % config.eval_every == 0 or step == total:
                    flush_accumulators()
                    if evaluate_and_checkpoint():
                        status = "target"
                        log(f"target {task.metric_name} {config.target_metric} reached at step {step}")
                        break
            if status == "stopped":
                flush_accumulators()
                loop["elapsed_s"] += time.perf_counter() - t_mark[0]
                t_mark[0] = time.perf_counter()
                save("last")
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        if in_update:
            if main:
                print(f"interrupted during an update; the last checkpoint in {run_dir} is kept", file=sys.stderr)
        else:
            flush_accumulators()
            loop["elapsed_s"] += time.perf_counter() - t_mark[0]
            t_mark[0] = time.perf_counter()
            save("last")
            if main:
                print(f"interrupted at step {step}/{total}; checkpoint saved to {last_path} "
                      f"(continue with: mru train --resume {run_dir})", file=sys.stderr)
        raise
    if bar is not None:
        bar.close()

    # -- the result -------------------------------------------------------------------------------------------
    test_metric = None
    dist.barrier()  # rank 0's checkpoints are complete before any rank reads "best"
    if status != "stopped":
        best_path = ckpt.checkpoint_path(run_dir, "best")
        if best_path.is_file():
            c = ckpt.load_checkpoint(best_path)
            model.load_state_dict(c.model_state())
            if c.state["schedule"].get("eps") is not None:
                model.set_eps(c.state["schedule"]["eps"])
            if c.state["schedule"].get("gamma") is not None:
                model.set_gamma(c.state["schedule"]["gamma"])
        test_data = task.dataset("test", n=config.n_test)
        test_metric = evaluate_data(model, task, test_data, config.eval_batch_size, device, config.bf16, dist=dist)
        log(f"test {task.metric_name} {test_metric:.4f} (checkpoint "
            f"{'best, step ' + str(loop['best_step']) if best_path.is_file() else 'last'})")
    result = RunResult(
        run_dir=str(run_dir), task=config.task, model=config.model, seed=config.seed,
        metric_name=task.metric_name, higher_is_better=task.higher_is_better, status=status, steps=step,
        total_steps=total, best_step=loop["best_step"], best_val=loop["best_val"],
        final_val=rows[-1]["val_metric"] if rows else None, test_metric=test_metric, train_length=task.length,
        wall_time_s=round(time.perf_counter() - t_start, 3), config=config.to_dict(), world_size=dist.world_size)
    if status != "stopped" and main:
        ckpt.atomic_write(run_dir / SUMMARY, (json.dumps(result.to_dict(), indent=1) + "\n").encode())
    return result
