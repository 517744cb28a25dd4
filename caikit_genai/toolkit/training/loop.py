"""The one torch training loop every module uses.

A module hands in its network, optimizer, a stream of batches and a `step_fn` that turns one
batch into a loss; this loop owns the rest: device placement, mixed precision (on CUDA, or
where asked for), gradient clipping, the learning-rate schedule, periodic evaluation, a progress
bar and a wall-clock budget. Cancellation needs no polling: the runtime trains in a subprocess and kills it.
Launched as several ranks (torchrun, a PyTorchJob), it trains data-parallel: see distributed.py.

Two networks with two optimizers (a GAN's generator and discriminator): pass `optimizer` as a
mapping name -> optimizer and a step function `step_fn(model, batch, update)` that calls
`update(name, loss)` where it wants that optimizer to step (backward, gradient averaging across
ranks, clipping and the step happen there, in the order the step function chooses) and returns
its losses by name. The progress bar then shows each loss, and the report keeps the last ones.
"""

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Union

import torch
from tqdm.auto import tqdm

import alog

from . import distributed
from ..models.device import autocast, grad_scaler
from .progress_file import ProgressFile

log = alog.use_channel("TRAIN")

_NO_MORE_BATCHES = object()
StepFn = Callable[[torch.nn.Module, Any], torch.Tensor]
# update(name, loss): backward `loss` and step the optimizer called `name`.
UpdateFn = Callable[[str, torch.Tensor], None]
MultiStepFn = Callable[[torch.nn.Module, Any, UpdateFn], Dict[str, torch.Tensor]]
EvalFn = Callable[[], Dict[str, float]]


@dataclass
class TrainingReport:
    """What a training run did, for logs and the model dir's metrics file."""

    steps: int = 0
    seconds: float = 0.0
    last_loss: float = math.nan
    # Two-optimizer runs: the smoothed last loss of each name the step function returned.
    last_losses: Dict[str, float] = field(default_factory=dict)
    stopped_by_time_budget: bool = False
    evaluations: List[Dict[str, float]] = field(default_factory=list)


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors (alone or inside dicts, lists and tuples) to the training device."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(value, device) for value in batch)
    return batch


def warmup_linear_schedule(optimizer, total_steps: int, warmup_fraction: float = 0.06, max_seconds: Optional[float] = None):
    """Linear warm-up then linear decay to zero: the usual recipe for fine-tuning encoders. With
    `max_seconds`, the decay is paced by steps or by the wall-clock budget, whichever runs out
    first, so a run cut short by its budget still ends on a low learning rate."""
    warmup_steps = max(1, int(total_steps * warmup_fraction))
    started = time.monotonic()

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 1.0 - fraction_done(step - warmup_steps, total_steps - warmup_steps, time.monotonic() - started, max_seconds)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def warmup_cosine_schedule(
    optimizer, total_steps: int, max_seconds: Optional[float] = None, warmup_steps: int = 20, floor: float = 0.1
):
    """Linear warm-up, then cosine decay to `floor` x the peak rate (nanoGPT's schedule), paced by
    steps or by the wall-clock budget, whichever runs out first: a run cut short by `max_seconds`
    still ends on a low learning rate."""
    started = time.monotonic()

    def factor(step: int) -> float:
        progress = fraction_done(step, total_steps, time.monotonic() - started, max_seconds)
        warmup = min(1.0, (step + 1) / warmup_steps)
        return warmup * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def run_training(
    model: torch.nn.Module,
    optimizer: Union[torch.optim.Optimizer, Mapping[str, torch.optim.Optimizer]],
    batches: Iterable[Any],
    step_fn: Union[StepFn, MultiStepFn],
    *,
    total_steps: int,
    device: torch.device,
    scheduler: Union[None, torch.optim.lr_scheduler.LRScheduler, Mapping[str, torch.optim.lr_scheduler.LRScheduler]] = None,
    grad_clip: Optional[float] = 1.0,
    evaluate: Optional[EvalFn] = None,
    eval_every: Optional[int] = None,
    max_seconds: Optional[float] = None,
    description: str = "training",
    precision: str = "auto",
    after_step: Optional[Callable[[], None]] = None,
) -> TrainingReport:
    """Train `model` for at most `total_steps` batches (or until `max_seconds` pass).

    `model` holds every trained network (an nn.ModuleDict for two). With one optimizer,
    `step_fn(model, batch)` returns the loss; with a mapping of optimizers,
    `step_fn(model, batch, update)` calls `update(name, loss)` per optimizer and returns its
    losses by name (see the module docstring). `precision`: see device.amp_dtype. `evaluate` runs every `eval_every` steps and once
    at the end; it must restore train mode itself if it changes it (this loop calls
    model.train() before each step anyway). `after_step()` runs after every optimizer step
    (a weight average's update).
    """
    if total_steps <= 0:
        raise ValueError("training needs at least one step: got no training batches")
    parallel = distributed.start(device)
    if parallel:
        distributed.broadcast_parameters(model)
        batches = distributed.shard(batches)
    records = distributed.is_main_process()  # only rank 0 evaluates and shows progress
    scaler = grad_scaler(device, precision)
    report = TrainingReport()
    started = time.monotonic()
    model.train()
    progress = TrainingProgress(total_steps, max_seconds, description, disable=not records)
    optimizers = dict(optimizer) if isinstance(optimizer, Mapping) else None
    update = _OptimizerStep(optimizers, scaler, parallel, grad_clip, report)
    schedulers = list(scheduler.values()) if isinstance(scheduler, Mapping) else [scheduler] if scheduler else []
    smoothed: Dict[str, float] = {}
    remaining = iter(batches)
    try:
        while report.steps < total_steps:
            batch = next(remaining, _NO_MORE_BATCHES)
            if _agreed(batch is _NO_MORE_BATCHES, parallel, device):  # any rank out of data stops them all
                break
            model.train()
            batch = move_to_device(batch, device)
            with autocast(device, precision):
                if optimizers is None:
                    losses = {"loss": step_fn(model, batch)}
                    update("loss", losses["loss"], optimizer)
                else:
                    losses = step_fn(model, batch, update)
            if scaler is not None:
                scaler.update()
            for one in schedulers:
                one.step()
            if after_step is not None:
                after_step()
            report.steps += 1
            _smooth(smoothed, losses)
            report.last_losses = dict(smoothed)
            report.last_loss = smoothed["loss"] if optimizers is None else math.nan
            progress.advance(report.steps, smoothed)
            if records and evaluate and eval_every and report.steps % eval_every == 0 and report.steps < total_steps:
                _record_evaluation(report, evaluate, progress)
            out_of_time = max_seconds is not None and time.monotonic() - started > max_seconds
            if _agreed(out_of_time, parallel, device):
                report.stopped_by_time_budget = report.steps < total_steps
                break
    finally:
        progress.close()
    _finish(report, model, device, parallel, evaluate if records else None, description)
    report.seconds = time.monotonic() - started
    progress.finished(report)
    return report


def fraction_done(steps: int, total_steps: int, elapsed: float, max_seconds: Optional[float]) -> float:
    """How far a run is toward whichever ends it first: its step cap or its wall-clock budget."""
    done = steps / max(1, total_steps)
    if max_seconds:
        done = max(done, elapsed / max_seconds)
    return min(1.0, done)


class TrainingProgress:
    """The run's progress bar. A run with a wall-clock budget usually ends by the clock, long
    before its step cap, so its bar runs from 0 to 100% of whichever ends it first (tqdm's time
    left then tells the truth) and shows the step count beside the losses; a run without a
    budget counts steps. Where the runtime's trainer asked for it, it also writes the progress
    to a file the runtime serves (progress_file.py)."""

    def __init__(self, total_steps: int, max_seconds: Optional[float], description: str, disable: bool):
        self.total_steps, self.max_seconds, self.started = total_steps, max_seconds, time.monotonic()
        self.percent = 0.0  # what the bar shows, kept also where the bar is disabled (other ranks)
        self.file = ProgressFile(total_steps, max_seconds, disabled=disable)
        if max_seconds:
            self.bar = tqdm(
                total=100, desc=description, unit="%", mininterval=2.0, dynamic_ncols=True, disable=disable,
                bar_format="{l_bar}{bar}| {n:.0f}% of the budget or the steps [{elapsed}<{remaining}{postfix}]",
            )
        else:
            self.bar = tqdm(total=total_steps, desc=description, unit="step", mininterval=2.0, dynamic_ncols=True, disable=disable)

    def advance(self, steps: int, losses: Dict[str, float]) -> None:
        shown = {name: f"{value:.4f}" for name, value in losses.items()}
        elapsed = time.monotonic() - self.started
        self.percent = 100 * fraction_done(steps, self.total_steps, elapsed, self.max_seconds)
        self.file.update(steps, self.percent, elapsed, losses)
        if self.max_seconds:
            self.bar.set_postfix({"step": f"{steps}/{self.total_steps}", **shown}, refresh=False)
            self.bar.update(self.percent - self.bar.n)
        else:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def write(self, message: str) -> None:
        self.bar.write(message)

    def evaluated(self, metrics: Dict[str, float]) -> None:
        self.file.last_evaluation = dict(metrics)

    def finished(self, report: TrainingReport) -> None:
        """The last word in the progress file: the steps taken, the final losses and evaluation."""
        if report.evaluations:
            self.evaluated(report.evaluations[-1])
        self.file.update(report.steps, 100.0, time.monotonic() - self.started, report.last_losses, final=True)

    def close(self) -> None:
        self.bar.close()


def _finish(report: TrainingReport, model, device, parallel: bool, evaluate: Optional[EvalFn], description: str) -> None:
    """After the last step: the ranks agree, the final evaluation, one log line."""
    if report.steps == 0:
        raise ValueError("training data produced no batches")
    if parallel:
        _check_ranks_agree(model, device)
    if evaluate:
        _record_evaluation(report, evaluate, None)
    log.info(
        "%s: %d steps, %s", description, report.steps,
        ", ".join(f"{name} {value:.4f}" for name, value in report.last_losses.items()),
    )


class _OptimizerStep:
    """update(name, loss): backward `loss` and step one optimizer: average gradients across ranks
    (before unscaling, so every rank sees the same gradients, infs included), clip, step."""

    def __init__(self, optimizers, scaler, parallel: bool, grad_clip: Optional[float], report: TrainingReport):
        self.optimizers, self.scaler, self.parallel, self.grad_clip, self.report = optimizers, scaler, parallel, grad_clip, report

    def __call__(self, name: str, loss: torch.Tensor, chosen: Optional[torch.optim.Optimizer] = None) -> None:
        if chosen is None:
            if name not in self.optimizers:
                raise KeyError(f"update({name!r}): the optimizers are {sorted(self.optimizers)}")
            chosen = self.optimizers[name]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training diverged: {name} is {loss.item()} at step {self.report.steps}")
        parameters = [p for group in chosen.param_groups for p in group["params"]]
        chosen.zero_grad(set_to_none=True)
        scaler = self.scaler
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if self.parallel:
            distributed.average_gradients(parameters)
        if scaler is not None:
            scaler.unscale_(chosen)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(parameters, self.grad_clip)
        if scaler is not None:
            scaler.step(chosen)
        else:
            chosen.step()


def _smooth(smoothed: Dict[str, float], losses: Dict[str, Any]) -> None:
    """An exponential moving average of each loss, for the progress bar and the report."""
    for name, loss in losses.items():
        value = float(loss.item() if isinstance(loss, torch.Tensor) else loss)
        smoothed[name] = value if name not in smoothed else 0.95 * smoothed[name] + 0.05 * value


def _agreed(flag: bool, parallel: bool, device: torch.device) -> bool:
    """`flag`, or with several ranks, whether it holds on any of them (so all stop at one step)."""
    return distributed.any_rank(flag, device) if parallel else flag


def _check_ranks_agree(model: torch.nn.Module, device: torch.device) -> None:
    if not distributed.parameters_agree(model, device):
        raise RuntimeError("data-parallel training went wrong: the ranks ended with different weights")
    log.info("parameters agree across %d ranks", distributed.world_size())


def _record_evaluation(report: TrainingReport, evaluate: EvalFn, progress) -> None:
    metrics = {"step": report.steps, **evaluate()}
    report.evaluations.append(metrics)
    message = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
    if progress is not None:
        progress.write(f"eval: {message}")
        progress.evaluated(metrics)
    log.info("eval: %s", message)
