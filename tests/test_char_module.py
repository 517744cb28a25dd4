"""CharTextGenerator and CharRNN in-process: stateful generation, sampling controls, save/load, training."""

import os

import pytest
import torch
from caikit.core.exceptions.caikit_core_exception import CaikitCoreException

from caikit_genai import CharTextGenerator
from caikit_genai.nets import CharRNN
from caikit_genai.toolkit.models.device import cpu_has_native_bf16
from conftest import TINY_CHAR_ID
from tiny_models import TINY_CHAR_RECIPE, char_training_text


@pytest.fixture(scope="module")
def generator(models_dir) -> CharTextGenerator:
    return CharTextGenerator.load(os.path.join(models_dir, TINY_CHAR_ID))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stepping_one_char_at_a_time_matches_reading_the_whole_sequence(cell):
    torch.manual_seed(0)
    net = CharRNN(vocab_size=11, hidden_size=16, num_layers=2, cell=cell, embedding_dim=8).eval()
    ids = torch.randint(0, 11, (3, 9))
    with torch.no_grad():
        whole, _ = net(ids)
        state, stepped = None, []
        for position in range(ids.shape[1]):
            logits, state = net.step(ids[:, position], state)
            stepped.append(logits)
    assert whole.shape == (3, 9, 11)
    torch.testing.assert_close(torch.stack(stepped, dim=1), whole, rtol=1e-5, atol=1e-5)


def test_each_new_character_costs_one_rnn_step(generator):
    """The prompt is read once; then one step per character, never a re-read of the prefix."""
    sequence_reads, steps = [], []
    hook = generator.net.rnn.register_forward_hook(lambda module, inputs, output: sequence_reads.append(inputs[0].shape))
    original_step = generator.net.step

    def counted_step(char_ids, state):
        steps.append(tuple(char_ids.shape))
        return original_step(char_ids, state)

    generator.net.step = counted_step
    try:
        result = generator.run("the dog ", max_new_tokens=50, seed=1)
    finally:
        hook.remove()
        del generator.net.step
    assert result.generated_tokens == 50
    assert [tuple(shape[:2]) for shape in sequence_reads] == [(1, len("the dog "))]
    assert steps == [(1,)] * 49  # the 50th character needs no step after it


def test_the_stream_is_lazy_and_joins_to_the_unary_text(generator):
    unary = generator.run("the hen ", max_new_tokens=30, seed=9).generated_text
    before = generator.chars_generated
    stream = generator.run_stream_out("the hen ", max_new_tokens=30, seed=9)
    assert generator.chars_generated == before  # nothing runs until someone reads
    first = [next(stream).generated_text for _ in range(3)]
    assert generator.chars_generated == before + 3
    stream.close()
    assert generator.open_generations == 0
    assert "".join(first) == unary[:3]
    assert "".join(m.generated_text for m in generator.run_stream_out("the hen ", max_new_tokens=30, seed=9)) == unary


def test_top_k_of_one_is_greedy(generator):
    greedy = generator.run("the cat ", max_new_tokens=40, decoding_method="GREEDY").generated_text
    assert generator.run("the cat ", max_new_tokens=40, top_k=1, seed=5, temperature=1.5).generated_text == greedy
    assert generator.run("the cat ", max_new_tokens=40, top_p=1e-6, seed=6, temperature=1.5).generated_text == greedy


def test_repetition_penalty_changes_the_text(generator):
    plain = generator.run("the dog ", max_new_tokens=60, decoding_method="GREEDY").generated_text
    penalised = generator.run("the dog ", max_new_tokens=60, decoding_method="GREEDY", repetition_penalty=3.0)
    assert penalised.generated_text != plain


def test_min_new_tokens_holds_back_a_stop_sequence(generator):
    free = generator.run("the cat", max_new_tokens=200, decoding_method="GREEDY", stop_sequences=[" "])
    assert free.generated_text.endswith(" ")
    assert " " not in free.generated_text[:-1]
    held = generator.run("the cat", max_new_tokens=200, decoding_method="GREEDY", stop_sequences=[" "], min_new_tokens=10)
    assert held.generated_text.endswith(" ") and len(held.generated_text) >= 10
    assert " " not in held.generated_text[9:-1]
    assert held.generated_text.startswith(free.generated_text)


def test_truncate_input_tokens_reads_only_the_end_of_the_prompt(generator):
    whole = generator.run("the cat sat on the ", max_new_tokens=20, seed=4)
    cut = generator.run("€€€ the cat sat on the ", max_new_tokens=20, seed=4, truncate_input_tokens=19)
    assert cut.input_token_count == 19
    assert cut.generated_text == whole.generated_text


def test_an_unknown_character_is_named(generator):
    with pytest.raises(CaikitCoreException, match=r"never saw: 'Q' \(U\+0051\)"):
        generator.run("the Quick cat", max_new_tokens=5)


def test_save_and_load_give_the_same_text_for_the_same_seed(generator, tmp_path):
    generator.save(str(tmp_path / "copy"))
    assert sorted(os.listdir(tmp_path)) == ["copy"]  # written atomically: no partial dirs left
    again = CharTextGenerator.load(str(tmp_path / "copy"))
    for seed in (1, 2):
        expected = generator.run("the hen ", max_new_tokens=80, seed=seed, temperature=1.2).generated_text
        assert again.run("the hen ", max_new_tokens=80, seed=seed, temperature=1.2).generated_text == expected
    assert again.vocab == generator.vocab
    assert again.max_new_tokens_limit == generator.max_new_tokens_limit
    assert again.metrics["val_loss_nats_per_char"] == generator.metrics["val_loss_nats_per_char"]


def test_training_reports_validation_loss_and_a_sample(generator):
    metrics = generator.metrics
    assert metrics["steps"] == TINY_CHAR_RECIPE["max_steps"]
    first, last = metrics["evaluations"][0]["val_loss"], metrics["val_loss_nats_per_char"]
    assert last < first
    assert 0 < last < 3.0  # from about ln(22) = 3.1 nats/char untrained
    assert metrics["validation_chars"] == int(len(char_training_text()) * 0.05)
    assert metrics["sample"]["text"]


def test_train_from_a_text_file_or_a_directory_of_them(tmp_path):
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "a.txt").write_text(char_training_text(6))
    (tmp_path / "books" / "b.txt").write_text("the end.\n" * 40)
    (tmp_path / "books" / "ignored.md").write_text("ZZZ")
    recipe = {**TINY_CHAR_RECIPE, "max_steps": 3}
    from_dir = CharTextGenerator.train(str(tmp_path / "books"), **recipe)
    assert "Z" not in from_dir.vocab and "." in from_dir.vocab
    from_file = CharTextGenerator.train(str(tmp_path / "books" / "b.txt"), **recipe)
    assert from_file.vocab == "".join(sorted(set("the end.\n")))


def test_bf16_training_where_the_cpu_has_it_still_learns():
    model = CharTextGenerator.train([char_training_text()], **{**TINY_CHAR_RECIPE, "precision": "bf16"})
    assert model.metrics["precision"] == ("bfloat16" if cpu_has_native_bf16() else "float32")
    assert model.metrics["recipe"]["precision"] == "bf16"
    assert all(parameter.dtype == torch.float32 for parameter in model.net.parameters())
    first, last = model.metrics["evaluations"][0]["val_loss"], model.metrics["val_loss_nats_per_char"]
    assert last < first


def test_a_time_budget_stops_training(tmp_path):
    model = CharTextGenerator.train([char_training_text()], **{**TINY_CHAR_RECIPE, "max_steps": 100_000}, max_seconds=1.0)
    assert model.metrics["stopped_by_time_budget"]
    assert model.metrics["steps"] < 100_000


@pytest.mark.parametrize(
    "training_data, overrides, message",
    [
        ("/no/such/file.txt", {}, "neither a .txt file nor a directory"),
        (["", " "], {}, "empty"),
        (["abc", 5], {}, "element 1 is not a string"),
        (["the cat sat on the mat. " * 4], {}, "fewer than one step needs"),
        ([char_training_text()], {"cell": "rnn"}, "cell"),
        ([char_training_text()], {"val_fraction": 0.7}, "val_fraction"),
    ],
)
def test_bad_training_input_is_a_clear_error(training_data, overrides, message):
    with pytest.raises(ValueError, match=message):
        CharTextGenerator.train(training_data, **{**TINY_CHAR_RECIPE, **overrides})
