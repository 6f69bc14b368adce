"""`recursa summarize FILE|-`: a document summarized recursively; progress on stderr; --json."""

from __future__ import annotations

import json
from pathlib import Path

from recursa.agent.runtime.scripted import ScriptedRuntime

from benchmarks.summaries.data import document


def _doc(tmp_path: Path, tokens: int = 5000) -> tuple[Path, str]:
    text = document(tokens, ScriptedRuntime().count_text).text
    path = tmp_path / "notes.txt"
    path.write_text(text, encoding="utf-8")
    return path, text


def test_summarize_json_has_the_summary_and_a_tree_that_covers_the_file(run, tmp_path):
    path, text = _doc(tmp_path)
    result = run.ok("summarize", str(path), "-m", "scripted", "--tokens", "128", "--json")
    data = json.loads(result.stdout)
    assert data["tokens"] <= 128 and data["summary"]
    assert data["chunks"] > 1 and data["levels"] >= 2 and data["model"] == "scripted"
    leaves: list[dict] = []

    def walk(node: dict) -> None:
        if not node["children"]:
            leaves.append(node)
        for child in node["children"]:
            walk(child)

    walk(data["tree"])
    assert all(a["end"] == b["start"] for a, b in zip(leaves, leaves[1:], strict=False))
    assert leaves[0]["start"] == 0 and leaves[-1]["end"] == len(text)
    # Progress and the closing line go to stderr, never into the JSON.
    assert "summarizing chunk 1" in result.stderr
    assert f"{data['chunks']} chunk(s), {data['levels']} level(s)" in result.stderr


def test_summarize_reads_standard_input_and_prints_plain_text(run, tmp_path):
    _, text = _doc(tmp_path, 2000)
    result = run.ok("summarize", "-", "-m", "scripted", "-t", "64", "--quiet", input=text)
    assert result.stderr == "" and result.stdout.strip()
    assert ScriptedRuntime().count_text(result.stdout.strip()) <= 64


def test_summarize_through_an_openai_compatible_server(run, tmp_path, openai_server):
    """A remote model is sized by its window; its (useless) condensations are checked away."""
    path, _ = _doc(tmp_path, 3000)
    with openai_server.serve(openai_server.Behaviour(models=("m",))) as server:
        data = run.json("summarize", str(path), "-m", f"openai:m@{server.base_url}", "-t", "96")
    assert data["tokens"] <= 96 and data["model"] == f"openai:m@{server.base_url}"
    assert "Hello from the test server" not in data["summary"]


def test_summarize_bad_inputs_are_usage_errors(run, tmp_path):
    missing = run("summarize", str(tmp_path / "nope.txt"), "-m", "scripted")
    assert missing.exit_code == 2 and "No file" in missing.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    result = run("summarize", str(empty), "-m", "scripted")
    assert result.exit_code == 2 and "empty" in result.stderr
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café au lait".encode("latin-1"))
    result = run("summarize", str(latin), "-m", "scripted")
    assert result.exit_code == 2 and "not UTF-8" in result.stderr and "iconv" in result.stderr
    result = run("summarize", str(latin), "--tokens", "4")
    assert result.exit_code == 2 and "--tokens" in result.stderr
    assert "Traceback" not in result.output
