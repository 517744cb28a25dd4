"""The shared toolkit: atomic model dirs, the training loop, device choice, data splits, the generation layer."""

import dataclasses
import inspect
import os
import time

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, MPNetConfig, MPNetForSequenceClassification

from caikit_genai.toolkit.models.device import amp_dtype, cpu_has_native_bf16, resolve_device
from caikit_genai.toolkit.models.model_dir import atomic_model_dir, exchange_paths
from caikit_genai.toolkit.offline_data import stable_split
from caikit_genai.toolkit.training.frozen_layers import freeze_lower_layers, lower_states, pad_token_ids, upper_logits
from caikit_genai.toolkit.training.loop import TrainingProgress, fraction_done, run_training, warmup_cosine_schedule
from caikit_genai.toolkit.training.optimizers import adamw, layer_decayed_rates
from caikit_genai.toolkit.training.recipes import Recipe, knob, recipe_train
from caikit_genai.toolkit.training.temperature import fit_temperature, fold_temperature, rescale
from caikit_genai.toolkit.training.weight_average import WeightAverage, trained_parameters


def test_a_failed_write_leaves_no_model_dir(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_model_dir(str(target)) as partial:
            (open(os.path.join(partial, "weights.bin"), "w")).write("half")
            raise RuntimeError("crash while saving")
    assert os.listdir(tmp_path) == []


def test_a_stale_partial_dir_is_cleaned_on_the_next_save(tmp_path):
    (tmp_path / ".model.partial-old").mkdir()
    with atomic_model_dir(str(tmp_path / "model")) as partial:
        open(os.path.join(partial, "config.yml"), "w").write("x: 1\n")
    assert os.listdir(tmp_path) == ["model"]


def test_saving_over_a_model_swaps_the_dirs_in_one_step(tmp_path):
    """The replaced model's dir (its inode) is never missing: the new one takes its place in one
    exchange, and the old contents are gone afterwards with no hidden dir left."""
    target = tmp_path / "model"
    with atomic_model_dir(str(target)) as partial:
        open(os.path.join(partial, "config.yml"), "w").write("version: 1\n")
    old_inode = os.stat(target).st_ino
    with atomic_model_dir(str(target)) as partial:
        open(os.path.join(partial, "config.yml"), "w").write("version: 2\n")
    assert open(target / "config.yml").read() == "version: 2\n"
    assert os.stat(target).st_ino != old_inode
    assert os.listdir(tmp_path) == ["model"]


def test_exchange_paths_swaps_two_dirs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f").write_text("A")
    (tmp_path / "b" / "f").write_text("B")
    if not exchange_paths(str(tmp_path / "a"), str(tmp_path / "b")):
        pytest.fail("renameat2(RENAME_EXCHANGE) is missing here: Linux 3.15+ and glibc 2.28+ have it")
    assert (tmp_path / "a" / "f").read_text() == "B" and (tmp_path / "b" / "f").read_text() == "A"


def test_a_saved_model_dir_gives_its_group_the_owners_permissions(tmp_path):
    """OpenShift serves with a random uid in group 0: the group must read what another pod saved."""
    with atomic_model_dir(str(tmp_path / "model")) as partial:
        os.makedirs(os.path.join(partial, "sub"))
        with open(os.path.join(partial, "sub", "weights.bin"), "w") as private:
            private.write("w")
        os.chmod(os.path.join(partial, "sub", "weights.bin"), 0o600)  # as tempfile-based savers write
    for root, _, files in os.walk(tmp_path / "model"):
        for path in [root] + [os.path.join(root, name) for name in files]:
            mode = os.stat(path).st_mode
            assert (mode >> 3) & 0o7 == (mode >> 6) & 0o7, f"{path}: {oct(mode & 0o777)}"
    assert os.stat(tmp_path / "model").st_mode & 0o777 == 0o775


def regression_problem():
    torch.manual_seed(0)
    inputs = torch.randn(256, 4)
    targets = inputs @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    return inputs, targets


def test_training_loop_lowers_the_loss_and_evaluates():
    inputs, targets = regression_problem()
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def loss_on_all():
        with torch.no_grad():
            return {"mse": float(torch.nn.functional.mse_loss(model(inputs).squeeze(-1), targets))}

    before = loss_on_all()["mse"]
    batches = ((inputs[i : i + 32], targets[i : i + 32]) for _ in range(20) for i in range(0, 256, 32))
    report = run_training(
        model,
        optimizer,
        batches,
        lambda net, batch: torch.nn.functional.mse_loss(net(batch[0]).squeeze(-1), batch[1]),
        total_steps=160,
        device=torch.device("cpu"),
        evaluate=loss_on_all,
        eval_every=40,
    )
    assert report.steps == 160
    assert [e["step"] for e in report.evaluations] == [40, 80, 120, 160]
    assert report.evaluations[-1]["mse"] < before / 10


def test_training_loop_stops_at_its_time_budget():
    inputs, targets = regression_problem()
    model = torch.nn.Linear(4, 1)
    endless = ((inputs, targets) for _ in iter(int, 1))
    report = run_training(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        endless,
        lambda net, batch: torch.nn.functional.mse_loss(net(batch[0]).squeeze(-1), batch[1]),
        total_steps=10**9,
        device=torch.device("cpu"),
        max_seconds=0.2,
    )
    assert report.stopped_by_time_budget
    assert 0 < report.steps < 10**9


def test_training_loop_refuses_a_diverged_loss():
    model = torch.nn.Linear(1, 1)
    with pytest.raises(FloatingPointError):
        run_training(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            [torch.ones(1)],
            lambda net, batch: net(batch).sum() * float("nan"),
            total_steps=1,
            device=torch.device("cpu"),
        )


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError):
        resolve_device("tpu-9000")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp32"])
def test_training_precision_on_a_cpu(precision):
    """bf16 is asked for, and then used only where the CPU has it natively; auto and fp32 train in fp32."""
    inputs, targets = regression_problem()
    model = torch.nn.Linear(4, 1)
    seen = []

    def step(net, batch):
        prediction = net(batch[0]).squeeze(-1)
        seen.append(prediction.dtype)
        return torch.nn.functional.mse_loss(prediction.float(), batch[1])

    def mse():
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(model(inputs).squeeze(-1), targets))

    before = mse()
    batches = ((inputs[i : i + 32], targets[i : i + 32]) for _ in range(10) for i in range(0, 256, 32))
    run_training(model, torch.optim.SGD(model.parameters(), lr=0.05), batches, step, total_steps=80, device=torch.device("cpu"), precision=precision)
    expected = torch.bfloat16 if precision == "bf16" and cpu_has_native_bf16() else torch.float32
    assert set(seen) == {expected}
    assert amp_dtype(torch.device("cpu"), precision) == (None if expected == torch.float32 else expected)
    assert model.weight.dtype == torch.float32
    assert mse() < before / 10


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp32"):
        amp_dtype(torch.device("cpu"), "fp8")


def test_a_fitted_temperature_undoes_overconfidence_and_folds_into_the_head(tiny_bert_dir):
    from caikit_genai.modules.sentiment_classifier.training import load_hf_classifier
    from caikit_genai.toolkit.metrics.classification_report import expected_calibration_error

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, size=(4000, 3))
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    gold = np.array([rng.choice(3, p=row) for row in truth])
    overconfident = rescale(truth, 1 / 3)  # logits three times too large
    temperature = fit_temperature(overconfident, gold)
    assert 2.7 < temperature < 3.3
    calibrated = rescale(overconfident, temperature)
    assert (calibrated.argmax(axis=1) == overconfident.argmax(axis=1)).all()

    def ece(scores):
        return expected_calibration_error(scores.max(axis=1), scores.argmax(axis=1) == gold)

    assert ece(calibrated) < 0.03 < ece(overconfident)

    tokenizer, model = load_hf_classifier(tiny_bert_dir, {0: "negative", 1: "positive"})
    model.eval()
    inputs = tokenizer(["a fine film", "a dull one"], return_tensors="pt", padding=True)
    before = model(**inputs).logits
    fold_temperature(model, 2.5)
    assert torch.allclose(model(**inputs).logits, before / 2.5, atol=1e-5)


def test_training_over_cached_lower_states_leaves_what_the_frozen_layers_compute_unchanged():
    """MPNet's layers share one relative position bias. Training the top layers must not move it,
    or serving (every layer, from the tokens) would no longer give the states the top layers
    learnt from: the cache and the served model would disagree."""
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=60, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, num_labels=2)
    model = MPNetForSequenceClassification(config)
    freeze_lower_layers(model, 1)
    encoded = [[0, *torch.randint(5, 60, (length,)).tolist(), 2] for length in (3, 9, 14, 6)]
    input_ids, attention_mask = pad_token_ids(encoded, config.pad_token_id)
    cached = lower_states(model, 1, input_ids, attention_mask)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    for _ in range(5):
        loss = upper_logits(model, 1, cached, attention_mask).logsumexp(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.testing.assert_close(lower_states(model, 1, input_ids, attention_mask), cached, atol=0, rtol=0)
    model.eval()
    with torch.no_grad():
        served = model(input_ids=input_ids, attention_mask=attention_mask).logits
        torch.testing.assert_close(served, upper_logits(model, 1, cached, attention_mask))


def test_layer_decayed_rates_give_each_trained_parameter_one_rate_falling_with_depth():
    """The head trains at the full rate, the top layer at rate * decay, the one below at
    rate * decay ** 2...; frozen parameters get no group and none is in two."""
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32)
    model = BertForSequenceClassification(config)
    freeze_lower_layers(model, 1)
    layers = model.bert.encoder.layer
    outside, layer_groups = layer_decayed_rates(model.named_parameters(), layers, 1e-3, 0.5)
    optimizer = adamw(outside, 1e-3, 0.01, extra_groups=layer_groups)
    rate_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    grouped = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert len(grouped) == len(set(grouped)) == sum(p.requires_grad for p in model.parameters())
    assert rate_of[id(model.classifier.weight)] == pytest.approx(1e-3)
    for index, expected in ((3, 5e-4), (2, 2.5e-4), (1, 1.25e-4)):
        assert all(rate_of[id(p)] == pytest.approx(expected) for p in layers[index].parameters())
    assert not any(id(p) in rate_of for p in layers[0].parameters())


def test_a_late_knob_follows_preset_in_the_train_signature_so_published_field_numbers_stay():
    """caikit numbers a train message's fields in train's signature order: the data, the knobs,
    the trailing data, preset, then the knobs marked late."""
    @dataclasses.dataclass
    class TwoKnobs(Recipe):
        epochs: int = knob(1, "Passes.")
        added: float = knob(0.5, "Added after the train RPC was published.", late=True)
        steps: int = knob(0, "Steps.")

    @recipe_train(TwoKnobs, "data: The examples.\nextra: More of them.", trailing=("extra",))
    def train(cls, data, extra=None, preset="", **knobs):  # pylint: disable=unused-argument
        """Train."""
        return knobs

    assert list(inspect.signature(train).parameters) == ["cls", "data", "epochs", "steps", "extra", "preset", "added"]
    assert "added: Added after the train RPC was published." in train.__doc__


def test_stable_split_is_deterministic_and_disjoint():
    items = [(f"sentence {i}", "x") for i in range(2000)]
    keep, held_out = stable_split(items, 0.1, "salt")
    assert len(keep) + len(held_out) == 2000
    assert 150 < len(held_out) < 250
    assert not set(keep) & set(held_out)
    # Adding and reordering items never moves an item across the split.
    keep2, held_out2 = stable_split(list(reversed(items)) + [("new", "x")], 0.1, "salt")
    assert set(held_out) <= set(held_out2) and set(keep) <= set(keep2)


def test_cosine_schedule_warms_up_then_decays_to_its_floor_by_steps():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = warmup_cosine_schedule(optimizer, total_steps=100, warmup_steps=10, floor=0.1)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0, abs=0.03)
    assert all(later <= earlier for earlier, later in zip(rates[10:], rates[11:]))
    assert rates[-1] == pytest.approx(0.1, abs=0.01)


def test_cosine_schedule_paced_by_a_time_budget_reaches_its_floor_when_time_runs_out():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = warmup_cosine_schedule(optimizer, total_steps=1_000_000, max_seconds=0.2, warmup_steps=1, floor=0.1)
    optimizer.step()
    schedule.step()
    assert optimizer.param_groups[0]["lr"] > 0.9  # a million steps to go, and the clock barely started
    time.sleep(0.25)
    optimizer.step()
    schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_training_loop_drives_two_optimizers_through_update():
    """A GAN-shaped step: two networks, two optimizers, each stepped where the step function
    says, losses reported by name; the loop's one-optimizer path is the same code."""
    torch.manual_seed(0)
    nets = torch.nn.ModuleDict({"a": torch.nn.Linear(2, 1), "b": torch.nn.Linear(2, 1)})
    optimizers = {name: torch.optim.SGD(nets[name].parameters(), lr=0.1) for name in nets}
    before = {name: nets[name].weight.detach().clone() for name in nets}
    order = []

    def step_fn(model, batch, update):
        loss_a = (model["a"](batch) ** 2).mean()
        update("a", loss_a)
        order.append("a")
        loss_b = ((model["b"](batch) - 1) ** 2).mean()
        update("b", loss_b)
        order.append("b")
        return {"A": loss_a, "B": loss_b}

    batches = (torch.randn(8, 2) for _ in range(100))
    report = run_training(nets, optimizers, batches, step_fn, total_steps=30, device=torch.device("cpu"), grad_clip=None)
    assert report.steps == 30 and order[:4] == ["a", "b", "a", "b"]
    assert set(report.last_losses) == {"A", "B"} and report.last_losses["A"] < 0.5
    assert all(not torch.equal(before[name], nets[name].weight) for name in nets)

    def bad_step(model, batch, update):
        update("c", model["a"](batch).mean())

    with pytest.raises(KeyError, match="the optimizers are"):
        run_training(nets, optimizers, iter([torch.randn(4, 2)]), bad_step, total_steps=1, device=torch.device("cpu"))


def test_a_weight_average_warms_up_moves_by_one_minus_decay_and_swaps_in_for_a_block():
    """min(decay, (1 + t) / (10 + t)) at update t; frozen parameters are not averaged; the swap
    puts the averages in the network and the trained weights back after it, after an error too;
    the loop calls after_step once per step."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    net[0].requires_grad_(False)
    average = WeightAverage.of_trained(net, decay=0.75)
    assert len(average.averages) == 2 and trained_parameters(net) == list(net[1].parameters())
    for updates, decay in ((0, 0.1), (100, 0.75)):
        average.updates = updates
        before = [tensor.clone() for tensor in average.averages]
        with torch.no_grad():
            for parameter in net.parameters():
                parameter.add_(1.0)
        average.update(trained_parameters(net))
        for old, new, current in zip(before, average.averages, trained_parameters(net)):
            torch.testing.assert_close(new, decay * old + (1 - decay) * current)
    trained = [parameter.detach().clone() for parameter in net.parameters()]
    with pytest.raises(RuntimeError, match="inside"):
        with average.swapped_into(trained_parameters(net)):
            assert all(torch.equal(p, a) for p, a in zip(trained_parameters(net), average.averages))
            assert torch.equal(net[0].weight, trained[0])  # frozen: not swapped
            raise RuntimeError("inside the block")
    assert all(torch.equal(p, t) for p, t in zip(net.parameters(), trained))
    with pytest.raises(ValueError, match="decay"):
        WeightAverage.of_trained(net, decay=1.0)

    updates = []
    optimizer = torch.optim.SGD(trained_parameters(net), lr=0.1)
    batches = (torch.randn(4, 3) for _ in range(10))
    run_training(net, optimizer, batches, lambda model, batch: model(batch).pow(2).mean(), total_steps=5,
                 device=torch.device("cpu"), after_step=lambda: updates.append(len(updates)))
    assert updates == [0, 1, 2, 3, 4]


# -- the generation layer ------------------------------------------------------------------------


def test_a_generation_signature_declares_run_for_caikit_and_fills_in_defaults():
    from typing import Optional

    from caikit.core.signature_parsing import CaikitMethodSignature
    from caikit.interfaces.nlp.data_model import GeneratedTextResult

    from caikit_genai.toolkit.generation import CAIKIT_NLP_ARGUMENTS, GenerationArgument, GenerationSignature

    declared = GenerationSignature(
        unit="character", max_new_tokens=None, default_max_new_tokens=50, decoding_method="GREEDY",
        extra=(GenerationArgument("unknown_characters", Optional[str], "REJECT", "REJECT or DROP."),),
    )

    class Generator:
        @declared.method("Continue a prompt.")
        def run(self, text: str = None, **generation) -> GeneratedTextResult:
            return text, generation

    signature = CaikitMethodSignature(Generator, "run")
    names = ["text"] + [arg.name for arg in CAIKIT_NLP_ARGUMENTS] + ["unknown_characters"]
    assert list(signature.parameters) == names
    assert signature.parameters["seed"] == Optional[np.uint64]
    assert signature.default_parameters["max_new_tokens"] is None
    assert signature.default_parameters["decoding_method"] == "GREEDY"
    assert signature.return_type is GeneratedTextResult
    assert "max_new_tokens: Characters to generate at most (default 50, or the model's" in Generator.run.__doc__
    assert "unknown_characters: REJECT or DROP." in Generator.run.__doc__

    text, generation = Generator().run("hi", 7, seed=3)
    assert text == "hi" and generation["max_new_tokens"] == 7 and generation["seed"] == 3
    assert generation["unknown_characters"] == "REJECT" and set(generation) == set(names) - {"text"}
    with pytest.raises(TypeError, match="no_such_argument"):
        Generator().run("hi", no_such_argument=1)

    checked = declared.check({"max_new_tokens": None}, max_new_tokens_limit=20)
    assert (checked.max_new_tokens, checked.greedy, checked.seed, checked.top_p) == (20, True, None, 1.0)


def test_server_defaults_leave_unset_sampling_values_to_the_server():
    from caikit.core.exceptions.caikit_core_exception import CaikitCoreException

    from caikit_genai.toolkit.generation import GenerationSignature

    declared = GenerationSignature(server_defaults=True)
    checked = declared.check({}, max_new_tokens_limit=1000)
    assert (checked.max_new_tokens, checked.greedy) == (200, False)
    assert (checked.temperature, checked.top_p, checked.repetition_penalty, checked.seed) == (None, None, None, None)
    assert declared.check({"seed": 5, "temperature": 0.5}, 1000).seed == 5
    with pytest.raises(CaikitCoreException, match="above the limit of 100 tokens"):
        declared.check({}, max_new_tokens_limit=100)
    local = GenerationSignature(temperature=0.8).check({}, 1000)
    assert (local.temperature, local.top_p, local.repetition_penalty) == (0.8, 1.0, 1.0) and local.seed > 0


def test_the_stream_joins_to_the_unary_result_and_closes_its_source():
    from caikit.interfaces.nlp.data_model import FinishReason

    from caikit_genai.toolkit.generation import GenerationSignature, generated_text_result, generated_text_stream

    parameters = GenerationSignature().check({"seed": 9, "preserve_input_text": True}, 1000)
    closed = []

    def chunks():
        try:
            yield from [("a", 1, None), ("bc", 2, None), ("d", 3, FinishReason.MAX_TOKENS)]
        finally:
            closed.append(True)

    unary = generated_text_result(chunks(), "in:", parameters, 3, None)
    assert (unary.generated_text, unary.generated_tokens, unary.finish_reason, unary.seed) == ("in:abcd", 3, FinishReason.MAX_TOKENS, 9)
    messages = list(generated_text_stream(chunks(), "in:", parameters, 3, None))
    assert "".join(message.generated_text for message in messages) == unary.generated_text
    assert [message.details.finish_reason for message in messages] == [FinishReason.NOT_FINISHED] * 3 + [FinishReason.MAX_TOKENS]
    stream = generated_text_stream(chunks(), "in:", parameters, 3, None)
    next(stream), next(stream)
    stream.close()
    assert closed == [True, True, True]


def test_a_budgeted_run_reports_progress_toward_whichever_ends_it_first():
    # 10 of 10,000 steps, 30 of 60 s: half done (by the clock), not 0.1%.
    assert fraction_done(10, 10_000, 30.0, 60.0) == 0.5
    assert fraction_done(9_000, 10_000, 6.0, 60.0) == 0.9  # the steps run out first
    assert fraction_done(10, 100, 999.0, None) == 0.1  # no budget: steps alone
    assert fraction_done(10, 100, 120.0, 60.0) == 1.0
    bar = TrainingProgress(10_000, 60.0, "test", disable=True)
    bar.started -= 30.0  # as if the run began 30 s ago
    bar.advance(10, {"loss": 1.0})
    assert 49.0 < bar.percent <= 51.0 and bar.bar.total == 100
    steps_bar = TrainingProgress(100, None, "test", disable=True)
    steps_bar.advance(1, {"loss": 1.0})
    assert steps_bar.percent == 1.0 and steps_bar.bar.total == 100
