"""Every CLI command through hostile inputs: one clear line, exit 1 or 2, nothing written.

Each case runs the real entry point in-process on a seeded database (SQLite,
then PostgreSQL) and asserts: exit code 1 or 2, exactly one line on stderr, no
traceback anywhere, and the database unchanged (every table's row count and a
hash of its rows). Generated cases (hypothesis) add import documents and random
bytes for every file argument. Human-readable output of stored text full of
escape sequences is checked to carry no control character.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hostile_helpers import ESC, Outcome, run_main, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MAX = 2**63 - 1
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
TRIED: dict[str, int] = {"cases": 0, "tracebacks": 0, "partial_writes": 0}


@dataclass
class Case:
    """One hostile invocation: `argv` (with "{db}" for the seeded URL, "{f:NAME}" for a file)."""

    name: str
    argv: list[str]
    input: str | bytes | None = None
    env: dict[str, str] = field(default_factory=dict)
    config: bytes | None = None  # config.toml contents; b"<dir>" makes it a folder
    db: bool = True  # pass --db {db} first
    says: str | None = None  # stderr must also contain this


def _files(folder: Path) -> dict[str, Path]:
    """Hostile files, by name."""
    rng = random.Random(14)
    chat = {
        "title": "t",
        "mapping": {
            "a": {
                "id": "a",
                "parent": None,
                "children": [],
                "message": {
                    "id": "a",
                    "author": {"role": "user"},
                    "create_time": "CT",
                    "content": {"content_type": "text", "parts": ["hi"]},
                },
            }
        },
        "current_node": "a",
    }

    def chatgpt(value: str) -> str:
        return json.dumps([chat]).replace('"CT"', value)

    texts: dict[str, str | bytes] = {
        "random.json": rng.randbytes(4096),
        "random.jsonl": rng.randbytes(2048),
        "random.gguf": rng.randbytes(1024),
        "latin1.json": '{"messages": [{"role": "user", "content": "caf\xe9"}]}'.encode("latin-1"),
        "empty.json": b"",
        "list.json": "[]",
        "scalar.json": "42",
        "string.json": '"hello"',
        "deep.json": "[" * 50_000 + "]" * 50_000,
        "deep_meta.json": json.dumps(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": "x",
                        "metadata": json.loads('{"a":' * 100 + "1" + "}" * 100),
                    }
                ]
            }
        ),
        "bigint.json": '{"messages": [{"role": "user", "content": "x", "metadata": {"n": '
        + "9" * 5000
        + "}}]}",
        "int65.json": '{"messages": [{"role": "user", "content": "x", "metadata": {"n": '
        + str(2**64)
        + "}}]}",
        "nan.json": '{"messages": [{"role": "user", "content": "x", "metadata": {"n": NaN}}]}',
        "inf.json": '{"messages": [{"role": "user", "content": "x", "metadata": {"n": 1e999}}]}',
        "date_max.json": '{"messages": [{"role": "user", "content": "x", '
        '"created_at": "9999-12-31T23:59:59.999999-23:59"}]}',
        "date_min.json": '{"messages": [{"role": "user", "content": "x", '
        '"created_at": "0001-01-01T00:00:00+14:00"}]}',
        "date_bad.json": '{"messages": [{"role": "user", "content": "x", "created_at": "soon"}]}',
        "nul_content.json": '{"messages": [{"role": "user", "content": "a\\u0000b"}]}',
        "surrogate.json": '{"messages": [{"role": "user", "content": "a\\ud800b"}]}',
        "role.json": '{"messages": [{"role": "wizard", "content": "x"}]}',
        "extra.json": '{"messages": [], "evil": 1}',
        "bad_second.json": json.dumps(
            [
                {"messages": [{"role": "user", "content": "ok"}]},
                {"messages": [{"role": "user", "content": 5}]},
            ]
        ),
        "chatgpt_nan.json": chatgpt("NaN"),
        "chatgpt_1e20.json": chatgpt("1e20"),
        "chatgpt_neg.json": chatgpt("-1e12"),
        "chatgpt_str.json": chatgpt('"yesterday"'),
        "bad.jsonl": '{"type": "conversation"}\n{"role": "user", "content": "x"}\nnot json\n',
        "existing.json": "{}",
    }
    big = {"messages": [{"role": "user", "content": "y" * 1000}] * 1200}  # about 1.2 MB
    texts["big.json"] = json.dumps(big)
    out = {}
    for name, data in texts.items():
        path = folder / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        out[name] = path
    (folder / "a_folder.json").mkdir()
    out["a_folder.json"] = folder / "a_folder.json"
    return out


ID_VALUES = ["0", "-1", str(MAX + 1), str(2**64), "1" + "0" * 30, "abc", "1e3", "", " 3", str(MAX)]
ID_COMMANDS = [
    ["conversations", "show", "{id}"],
    ["conversations", "rename", "{id}", "t"],
    ["conversations", "archive", "{id}"],
    ["conversations", "rm", "-y", "{id}"],
    ["conversations", "export", "{id}"],
    ["conversations", "search", "-c", "{id}", "hello"],
    ["summaries", "{id}"],
    ["trace", "{id}"],
    ["prompt", "-m", "scripted", "{id}", "x"],
    ["rate", "{id}", "good"],
    ["ask", "-m", "scripted", "-c", "{id}", "hi"],
    ["write", "-m", "scripted", "--resume", "{id}"],
    ["chat", "-c", "{id}"],
    ["dataset", "export", "-c", "{id}", "-o", "-"],
]
BIG = "word " * 6000


def cases() -> list[Case]:
    out = [
        Case(f"id {v!r}: {' '.join(c[:2])}", [a.replace("{id}", v) for a in c])
        for c in ID_COMMANDS
        for v in ID_VALUES
    ]
    out += [
        Case(f"import {name}", ["conversations", "import", f"{{f:{name}}}"])
        for name in (
            "random.json",
            "random.jsonl",
            "latin1.json",
            "empty.json",
            "list.json",
            "scalar.json",
            "string.json",
            "deep.json",
            "deep_meta.json",
            "bigint.json",
            "int65.json",
            "nan.json",
            "inf.json",
            "date_max.json",
            "date_min.json",
            "date_bad.json",
            "nul_content.json",
            "surrogate.json",
            "role.json",
            "extra.json",
            "bad_second.json",
            "chatgpt_nan.json",
            "chatgpt_1e20.json",
            "chatgpt_neg.json",
            "chatgpt_str.json",
            "bad.jsonl",
            "a_folder.json",
        )
    ]
    out += [
        Case("import missing file", ["conversations", "import", "/no/such/file.json"]),
        Case("import /dev/zero", ["conversations", "import", "/dev/zero"]),
        Case("import too large", ["conversations", "import", "--max-size", "1", "{f:big.json}"]),
        Case("import as chatgpt", ["conversations", "import", "-f", "chatgpt", "{f:list.json}"]),
        Case("re-import", ["conversations", "import", "{f:export1.json}"]),
        Case("ask NUL", ["ask", "-m", "scripted", "a\x00b"]),
        Case("ask surrogate", ["ask", "-m", "scripted", "a\udcffb"]),
        Case("ask NUL title", ["ask", "-m", "scripted", "-t", "a\x00", "hi"]),
        Case("ask NUL system", ["ask", "-m", "scripted", "-s", "a\x00", "hi"]),
        Case("ask empty", ["ask", "-m", "scripted"], input="  \n"),
        Case("ask non-UTF-8 stdin", ["ask", "-m", "scripted"], input=b"\xff\xfe\xfa"),
        Case("ask unknown model", ["ask", "-m", "./no/such/model.gguf", "hi"]),
        Case("ask fake gguf", ["ask", "-m", "{f:random.gguf}", "hi"]),
        Case("ask huge system", ["ask", "-m", "scripted", "-s", BIG, "hi"]),
        Case("ask huge message", ["ask", "-m", "scripted", BIG]),
        Case("ask huge --json", ["ask", "-m", "scripted", "--json", BIG]),
        Case("ask title with -c", ["ask", "-m", "scripted", "-c", "1", "-t", "x", "hi"]),
        Case("ask max-new-tokens 0", ["ask", "-m", "scripted", "--max-new-tokens", "0", "hi"]),
        Case("ask bad env", ["ask", "-m", "scripted", "hi"], env={"RECURSA_POLICY": "nope"}),
        Case(
            "ask nan env",
            ["ask", "-m", "scripted", "hi"],
            env={"RECURSA_GENERATION__TEMPERATURE": "nan"},
        ),
        Case("ask bad json env", ["ask", "-m", "scripted", "hi"], env={"RECURSA_BUDGET": "{x"}),
        Case(
            "ask share env",
            ["ask", "-m", "scripted", "hi"],
            env={"RECURSA_BUDGET__SUMMARY_SHARE": "0.9"},
        ),
        Case("rename empty", ["conversations", "rename", "1", ""]),
        Case("rename blank", ["conversations", "rename", "1", "   "]),
        Case("rename NUL", ["conversations", "rename", "1", "a\x00b"]),
        Case("search empty", ["conversations", "search", "  "]),
        Case("search huge context", ["conversations", "search", "-C", str(MAX), "hello"]),
        Case("list huge limit", ["conversations", "list", "-n", str(2**64)]),
        Case("export nothing", ["conversations", "export"]),
        Case("export both", ["conversations", "export", "--all", "1"]),
        Case("export existing", ["conversations", "export", "1", "-o", "{f:existing.json}"]),
        Case("export no folder", ["conversations", "export", "1", "-o", "/no/such/dir/x.json"]),
        Case("export bad format", ["conversations", "export", "1", "-f", "xml"]),
        Case("trace of a user message", ["trace", "1"]),
        Case("rate a user message", ["rate", "1", "good"]),
        Case("rate bad verdict", ["rate", "2", "meh"]),
        Case("prompt unknown model", ["prompt", "-m", "nope-model", "1", "x"]),
        Case("write without tokens", ["write", "-m", "scripted", "hello"]),
        Case("dataset bad since", ["dataset", "export", "--all", "--since", "soon", "-o", "-"]),
        Case("dataset existing", ["dataset", "export", "--all", "-o", "{f:existing.json}"]),
        Case("dataset no folder", ["dataset", "export", "--all", "-o", "/no/such/dir/x.jsonl"]),
        Case("chat without a terminal", ["chat"]),
        Case("bare recursa without a terminal", []),
        Case("unknown command", ["frobnicate"]),
        Case("unknown option", ["conversations", "list", "--nope"]),
        Case("empty --db", ["--db", "", "conversations", "list"], db=False),
        Case("postgres without database", ["--db", "postgresql+psycopg://", "c", "list"], db=False),
        Case(
            "postgres host only",
            ["--db", "postgresql+psycopg://u@127.0.0.1:5432", "c", "list"],
            db=False,
        ),
        Case("bad port", ["--db", "postgresql+psycopg://u@127.0.0.1:abc/x", "c", "list"], db=False),
        Case(
            "port out of range",
            ["--db", "postgresql+psycopg://u@127.0.0.1:99999/x", "c", "list"],
            db=False,
        ),
        Case("unsupported database", ["--db", "mysql://x@h/db", "c", "list"], db=False),
        Case("garbage url", ["--db", "not a url", "c", "list"], db=False),
        Case(
            "sqlite url to a folder", ["--db", "sqlite:///{f:a_folder.json}", "c", "list"], db=False
        ),
        Case(
            "db current of postgres without database",
            ["db", "current", "--url", "postgresql+psycopg://"],
            db=False,
        ),
    ]
    write = ["write", "-m", "scripted", "-n", "8"]
    stored = "Nothing was stored."
    out += [
        Case(f"write {name}", argv, input=stdin, says=stored)
        for name, argv, stdin in [
            ("unknown model", ["write", "-m", "./no/such/model.gguf", "-n", "8", "hi"], None),
            ("fake gguf", ["write", "-m", "{f:random.gguf}", "-n", "8", "hi"], None),
            ("unknown preset", [*write, "-p", "nope"], None),
            ("empty stop", [*write, "--stop", "", "hi"], None),
            ("NUL stop", [*write, "--stop", "a\x00", "hi"], None),
            ("surrogate stop", [*write, "--stop", "a\udcff", "hi"], None),
            ("NUL instructions", [*write, "-i", "a\x00b", "hi"], None),
            ("blank instructions", [*write, "-i", "   ", "hi"], None),
            ("huge instructions", [*write, "-i", BIG, "hi"], None),
            ("NUL opening", [*write, "a\x00b"], None),
            ("surrogate opening", [*write, "a\udcffb"], None),
            ("huge opening", [*write, BIG], None),
            ("huge piped opening", write, BIG),
            ("tokens 0", ["write", "-m", "scripted", "-n", "0", "hi"], None),
            ("tokens -1", ["write", "-m", "scripted", "-n", "-1", "hi"], None),
            ("tokens past 2^64", ["write", "-m", "scripted", "-n", str(2**64), "hi"], None),
            ("step 0", [*write, "--step", "0", "hi"], None),
            ("step past the budget", [*write, "--step", "100000", "hi"], None),
            ("seed -1", [*write, "--seed", "-1", "hi"], None),
            ("seed past 2^63", [*write, "--seed", str(MAX + 1), "hi"], None),
        ]
    ]
    out += [
        Case("write non-UTF-8 stdin", write, input=b"\xff\xfe\xfa"),
        Case("write bad env", [*write, "hi"], env={"RECURSA_POLICY": "nope"}, says=stored),
        Case("write config typo", [*write, "hi"], config=b'modle = "x"\n', says=stored),
        Case("write resume past max", ["write", "-m", "scripted", "--resume", "2", "-n", str(MAX)]),
    ]
    configs = {
        "config syntax": b"model = smollm\n",
        "config not UTF-8": b'model = "\xff\xfe"\n',
        "config NUL": b'model = "a\x00"\n',
        "config folder": b"<dir>",
        "config nan": b"[generation]\ntemperature = nan\n",
        "config unknown key": b'modle = "x"\n',
        "config bad policy": b'policy = "nope"\n',
    }
    for name, data in configs.items():
        out.append(Case(name, ["conversations", "list"], config=data))
        out.append(Case(name + " (ask)", ["ask", "-m", "scripted", "hi"], config=data))
    return out


CASES = cases()


@pytest.fixture(scope="module")
def files(seeded_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile-files")
    found = _files(folder)
    export = folder / "export1.json"
    done = run_main(["--db", seeded_url, "conversations", "export", "1", "-o", str(export)])
    assert done.code == 0, done.stderr
    found["export1.json"] = export
    return found


def _argv(case: Case, url: str, files: dict[str, Path]) -> list[str]:
    def fill(arg: str) -> str:
        return re.sub(r"\{f:([^}]+)\}", lambda m: str(files[m.group(1)]), arg)

    argv = [fill(a) for a in case.argv]
    return ["--db", url, *argv] if case.db else argv


def check_hostile(outcome: Outcome, before: dict, after: dict, what: str) -> None:
    """Exit 1 or 2, one line on stderr, no traceback, nothing written."""
    TRIED["cases"] += 1
    if "Traceback" in outcome.stderr + outcome.stdout:
        TRIED["tracebacks"] += 1
    if before != after:
        TRIED["partial_writes"] += 1
    assert "Traceback" not in outcome.stderr + outcome.stdout, what
    assert outcome.code in (1, 2), (what, outcome)
    lines = outcome.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("Error: "), (what, outcome.stderr)
    assert not UNSAFE.search(outcome.stderr), (what, outcome.stderr)
    assert "unexpected failure" not in outcome.stderr, (what, outcome.stderr)
    assert before == after, (what, "the database changed")


@pytest.fixture
def in_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Case], None]:
    def apply(case: Case) -> None:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        monkeypatch.setenv("RECURSA_HOME", str(home))
        config = home / "config.toml"
        if case.config == b"<dir>":
            config.mkdir()
        elif case.config is not None:
            config.write_bytes(case.config)
        for key, value in case.env.items():
            monkeypatch.setenv(key, value)

    return apply


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_gets_one_line_and_writes_nothing(case, seeded_url, files, in_home):
    in_home(case)
    before = snapshot(seeded_url)
    outcome = run_main(_argv(case, seeded_url, files), input=case.input)
    check_hostile(outcome, before, snapshot(seeded_url), case.name)
    if case.says is not None:
        assert case.says in outcome.stderr, (case.name, outcome.stderr)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "tool", 3]),
        "content": st.text(max_size=30) | st.integers(),
    },
    optional={
        "created_at": st.sampled_from(
            [
                "2024-05-01T12:30:00Z",
                "9999-12-31T23:59:59-23:59",
                "0001-01-01T00:00:00+01:00",
                "x",
                17,
            ]
        ),
        "metadata": json_values,
        "status": st.sampled_from(["complete", "error", "?"]),
        "pinned": st.booleans() | st.integers(),
    },
)
documents = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"messages": st.lists(message, max_size=4)},
        optional={
            "title": st.text(max_size=10) | st.integers(),
            "system_prompt": st.text(max_size=10) | st.none(),
        },
    ),
    st.lists(st.fixed_dictionaries({"messages": st.lists(message, max_size=3)}), max_size=3),
)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=documents)
def test_generated_import_documents_import_whole_or_fail_cleanly(doc, seeded_url, tmp_path):
    """A generated document either imports (new rows, exit 0) or fails with one line and
    leaves the database unchanged; never a traceback."""
    path = tmp_path / "generated.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8", errors="surrogatepass")
    before = snapshot(seeded_url)
    outcome = run_main(["--db", seeded_url, "conversations", "import", "--again", str(path)])
    after = snapshot(seeded_url)
    if outcome.code == 0:
        assert after["conversations"][0] > before["conversations"][0]
        TRIED["cases"] += 1
        return
    check_hostile(outcome, before, after, f"import {doc!r}")


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.binary(min_size=1, max_size=3000),
    target=st.sampled_from(["import.json", "import.jsonl", "model.gguf", "config.toml"]),
)
def test_random_bytes_for_every_file_argument(data, target, seeded_url, tmp_path, monkeypatch):
    """Random bytes as an import file, a model file or the config file: one line, no write."""
    home = tmp_path / "home-bytes"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("RECURSA_HOME", str(home))
    (home / "config.toml").unlink(missing_ok=True)
    path = (home / "config.toml") if target == "config.toml" else tmp_path / target
    path.write_bytes(data)
    argv = {
        "import.json": ["conversations", "import", str(path)],
        "import.jsonl": ["conversations", "import", str(path)],
        "model.gguf": ["ask", "-m", str(path), "hi"],
        "config.toml": ["conversations", "list"],
    }[target]
    before = snapshot(seeded_url)
    outcome = run_main(["--db", seeded_url, *argv])
    after = snapshot(seeded_url)
    if outcome.code == 0 and target == "config.toml":  # random bytes that are valid TOML
        TRIED["cases"] += 1
        return
    check_hostile(outcome, before, after, f"{target} {data[:40]!r}")


READERS = [
    ["conversations", "list"],
    ["conversations", "list", "-a"],
    ["conversations", "show", "1"],
    ["conversations", "show", "2"],
    ["conversations", "show", "--md", "1"],
    ["conversations", "search", "hello"],
    ["conversations", "search", "question"],
    ["trace", "4"],
    ["trace", "--raw", "4"],
    ["summaries", "1"],
    ["prompt", "-m", "scripted", "2", f"next {ESC}"],
]


@pytest.mark.parametrize("argv", READERS, ids=[" ".join(a) for a in READERS])
def test_stored_escape_sequences_never_reach_the_terminal(argv, seeded_url):
    """Titles, system prompts, messages and replies hold escape sequences; human-readable
    output shows them as visible escapes and carries no control character."""
    outcome = run_main(["--db", seeded_url, *argv])
    assert outcome.code == 0, outcome.stderr
    assert "\\x1b" in outcome.stdout or argv[0] == "summaries"
    assert not UNSAFE.search(outcome.stdout), outcome.stdout
    assert not UNSAFE.search(outcome.stderr), outcome.stderr


def test_zz_report_the_count(capsys):
    """Prints how many hostile cases ran, with tracebacks and partial writes found."""
    with capsys.disabled():
        print(f"\nhostile cases tried: {TRIED}", file=os.sys.stderr)  # type: ignore[attr-defined]
