"""Every command in docs/api.md's "Attention inspection" section, run as written against the test
runtime (which serves the real attention-minilm): curl through requests, grpcurl through the
generated stubs after checking its names by reflection, the view command and the Python snippets.
Only localhost's ports are swapped for the runtime's."""

import contextlib
import io
import json
import os
import re
import shlex

import requests
from google.protobuf import json_format
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from caikit_genai.attention_view import main as attention_view

PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "api.md")


def section(title: str) -> str:
    text = open(PAGE, encoding="utf-8").read()
    start = text.index(f"\n## {title}\n")
    end = re.search(r"\n##+ ", text[start + 1 :])
    return text[start : start + 1 + end.start()] if end else text[start:]


def code_blocks(text: str, language: str):
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def commands(block: str):
    """(argv, the comment lines after it) pairs of a shell block, as sh reads it: backslash
    continuations joined, a quoted string may span lines."""
    result, pending = [], ""
    for line in block.replace("\\\n", " ").splitlines():
        if not pending and line.startswith("#"):
            if result:
                result[-1][1].append(line[1:].strip())
            continue
        pending = f"{pending}\n{line}" if pending else line
        try:
            argv = shlex.split(pending)
        except ValueError:  # an open quote: the command goes on on the next line
            continue
        if argv:
            result.append((argv, []))
        pending = ""
    assert not pending, f"unterminated command: {pending}"
    return result


def comment_keys(comments):
    return set(re.findall(r'"(\w+)":', " ".join(comments)))


def all_keys(value):
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in all_keys(item)}
    if isinstance(value, list):
        return {key for item in value for key in all_keys(item)}
    return set()


def run_curl(runtime, argv, workdir):
    url = next(arg for arg in argv if "localhost:" in arg).replace("localhost:8080", runtime.http_url)
    url = url if url.startswith("http") else "http://" + url
    data = argv[argv.index("-d") + 1]
    response = requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 200, response.text
    if ">" in argv:
        (workdir / argv[argv.index(">") + 1]).write_text(response.text, encoding="utf-8")
    return response.json()


def reflected_symbols(runtime):
    stub = reflection_pb2_grpc.ServerReflectionStub(runtime.channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="caikit.runtime.Nlp.NlpService")
    blobs = [blob for reply in stub.ServerReflectionInfo(iter([request]), timeout=10) for blob in reply.file_descriptor_response.file_descriptor_proto]
    return b"".join(blobs)


def run_grpcurl(runtime, argv):
    service, method = argv[-1].rsplit("/", 1)
    assert service == "caikit.runtime.Nlp.NlpService"
    descriptors = reflected_symbols(runtime)
    assert method.encode() in descriptors and b"AttentionInspectionTaskRequest" in descriptors
    model_id = argv[argv.index("-H") + 1].split(":", 1)[1].strip()
    request = json_format.Parse(argv[argv.index("-d") + 1], runtime.message("AttentionInspectionTaskRequest"))
    response = getattr(runtime.inference, method)(request, metadata=[("mm-model-id", model_id)], timeout=60)
    return json.loads(json_format.MessageToJson(response, preserving_proto_field_name=True))


def test_the_attention_shell_commands_run_as_written(runtime, tmp_path, monkeypatch):
    os.symlink(runtime.models_dir, tmp_path / "models")
    monkeypatch.chdir(tmp_path)
    ran = []
    for block in code_blocks(section("Attention inspection"), "sh"):
        for argv, comments in commands(block):
            line = shlex.join(argv)
            if argv[0] == "curl":
                output = run_curl(runtime, argv, tmp_path)
            elif argv[0] == "grpcurl":
                output = run_grpcurl(runtime, argv)
                shape = re.search(r'"shape": \[([^\]]*)\]', " ".join(comments))
                assert json.loads(f"[{shape.group(1)}]") == output["attentions"][0]["shape"]
            else:
                assert argv[:3] == ["python", "-m", "caikit_genai.attention_view"], line
                assert attention_view(argv[3:]) == 0
                output = {}
            assert comment_keys(comments) <= all_keys(output), line
            ran.append(argv[0])
    assert ran == ["curl", "curl", "python", "grpcurl", "python"]
    assert (tmp_path / "view.html").exists() and (tmp_path / "heatmap.png").exists()


def test_the_attention_python_snippets_print_what_they_say(runtime, tiny_bert_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    snippets = code_blocks(section("Attention inspection"), "python")
    assert len(snippets) == 2
    for snippet in snippets:
        code = snippet.replace("http://localhost:8080", runtime.http_url)
        code = code.replace("path/to/any-hf-encoder-or-seq2seq", tiny_bert_dir)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "docs/api.md", "exec"), {})  # pylint: disable=exec-used
        promised = [
            line[2:]
            for previous, line in zip(snippet.splitlines(), snippet.splitlines()[1:])
            if previous.startswith("print(") and line.startswith("# ")
        ]
        assert printed.getvalue().splitlines() == promised
    assert (tmp_path / "models" / "my-attention" / "config.yml").exists()
