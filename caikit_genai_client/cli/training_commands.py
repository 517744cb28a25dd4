"""The training sub-commands: train (a live status line until the job ends; Ctrl-C asks whether
to cancel it), status and cancel."""

import json
import sys
import time

from .. import TrainingProgress, TrainingStatus
from ..contract import TRAIN_RPCS
from .output import key_values, print_json


def add(commands, common) -> None:
    train = commands.add_parser("train", parents=[common], help="start a training and follow it until it ends")
    train.add_argument("module", help=f"{', '.join(TRAIN_RPCS)}, or a train RPC's name")
    train.add_argument("model_name", help="the name the runtime serves the trained model as")
    data = train.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", metavar="FILE", help="a local .json (an array) or .jsonl file of examples, sent inline")
    data.add_argument("--data-file", metavar="NAME", help="a file in the runtime's training data dir (read there)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="a train parameter, VALUE read as JSON where it can be (repeatable)")
    train.add_argument("--no-wait", action="store_true", help="print the training id and return")
    train.add_argument("--poll", type=float, default=1.0, metavar="SECONDS", help="how often to ask for the status (default 1)")
    train.set_defaults(handler=run_train)

    status = commands.add_parser("status", parents=[common], help="a training's state")
    status.add_argument("training_id")
    status.set_defaults(handler=run_status)

    cancel = commands.add_parser("cancel", parents=[common], help="cancel a training")
    cancel.add_argument("training_id")
    cancel.set_defaults(handler=run_cancel)


def run_train(args, client) -> int:
    training_data = read_examples(args.data) if args.data else args.data_file
    job = client.train(args.module, args.model_name, training_data, **key_values(args.set, "--set"))
    if args.json:
        print_json({"training_id": job.training_id, "model_name": job.model_name})
    else:
        print(f"training {job.training_id} started: model {job.model_name}", flush=True)
    if args.no_wait:
        return 0
    line = StatusLine(quiet=args.json)
    try:
        final = client.wait(job.training_id, poll_seconds=args.poll, on_status=line.show)
    except KeyboardInterrupt:
        line.end()
        if not ask(f"cancel training {job.training_id}? [y/N] "):
            print(f"left running: caikit-genai status {job.training_id}", file=sys.stderr)
            return 130
        final = client.cancel(job.training_id)
        final = client.wait(job.training_id, poll_seconds=args.poll) if not final.done else final
    line.end()
    report_status(args, final)
    if final.state == "COMPLETED" and not args.json:
        print(f"model {job.model_name} is served by that name")
    return 0 if final.state == "COMPLETED" else 1


def run_status(args, client) -> int:
    report_status(args, client.status(args.training_id))
    return 0


def run_cancel(args, client) -> int:
    report_status(args, client.cancel(args.training_id))
    return 0


def report_status(args, status: TrainingStatus) -> None:
    if args.json:
        print_json(status.raw if status.progress is None else {**status.raw, "progress": status.progress.raw})
        return
    elapsed = f" after {status.elapsed_seconds:.0f} s" if status.elapsed_seconds is not None else ""
    progress = f", {progress_text(status.progress)}" if status.progress is not None else ""
    print(f"training {status.training_id}: {status.state}{elapsed}{progress}")
    for reason in status.reasons:
        print(f"  {reason}")


def progress_text(progress: TrainingProgress) -> str:
    """`step 120/5000, 37%, ETA 41 s, loss 1.9021`: the steps where they end the run, the percent
    where a time budget does (it usually ends first); `starting` before the first step."""
    if not progress.started:
        return "starting"
    parts = [f"step {progress.step}/{progress.total_steps}", f"{progress.percent:.0f}%"]
    if progress.eta_seconds is not None and not progress.finished:
        parts.append(f"ETA {progress.eta_seconds:.0f} s")
    parts += [f"{name} {value:.4f}" for name, value in progress.losses.items() if value is not None]
    return ", ".join(parts)


class StatusLine:
    """The job's state and time, with its progress (step, percent, ETA) where the runtime serves it
    over HTTP, rewritten in place on a terminal; a line per state change elsewhere."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.live = sys.stderr.isatty()
        self.started = time.monotonic()
        self.last_state = None
        self.written = False

    def show(self, status: TrainingStatus) -> None:
        if self.quiet or status.done:  # the end is reported on its own
            return
        text = f"{status.state} {time.monotonic() - self.started:.0f} s"
        if status.progress is not None:
            text += f": {progress_text(status.progress)}"
        if self.live:
            sys.stderr.write(f"\r{text}   ")
            sys.stderr.flush()
            self.written = True
        elif status.state != self.last_state:
            print(status.state, file=sys.stderr, flush=True)
        self.last_state = status.state

    def end(self) -> None:
        if self.written:
            sys.stderr.write("\n")
            self.written = False


def ask(question: str) -> bool:
    """A yes/no answer from the user; no answer (stdin closed) is no."""
    print(question, end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = "y"  # a second Ctrl-C: the user means it
    return answer.strip().lower() in ("y", "yes")


def read_examples(path: str) -> list:
    """A local examples file: a .json array, or .jsonl with one JSON value per line."""
    with open(path, encoding="utf-8") as examples_file:
        text = examples_file.read()
    if path.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    examples = json.loads(text)
    if not isinstance(examples, list):
        raise ValueError(f"{path}: a .json examples file holds an array")
    return examples
