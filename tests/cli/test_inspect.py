"""`recursa prompt`, `recursa trace`, `recursa summaries`: plans, past prompts, summary chains."""

from __future__ import annotations

from recursa.agent.runtime.scripted import ScriptedRuntime


def test_prompt_shows_the_next_plan_as_a_table_with_the_budget(run, seed):
    cid = seed("Plan me", [("My sister is Ada", "Noted"), ("She lives in Porto", "Nice")])
    out = run.ok("prompt", str(cid), "-m", "scripted", "Where does Ada live?").stdout
    for word in ("Section", "system", "window", "new", "free", "budget", "scripted"):
        assert word in out
    assert "[S" in out  # the budget bar starts with the system section
    plan = run.json("prompt", str(cid), "-m", "scripted", "Where does Ada live?")
    assert plan["total_tokens"] <= plan["budget"]
    assert sum(s["tokens"] for s in plan["sections"]) == plan["total_tokens"]
    kinds = [s["kind"] for s in plan["sections"]]
    assert kinds[0] == "system" and kinds[-1] == "new"
    assert plan["messages"][-1] == {"role": "user", "content": "Where does Ada live?"}
    # Nothing was stored by previewing.
    assert run.json("conversations", "show", str(cid))["conversation"]["message_count"] == 4


def test_prompt_without_text_plans_an_empty_new_message(run, seed):
    cid = seed("x", [("a", "b")])
    plan = run.json("prompt", str(cid), "-m", "scripted")
    assert plan["messages"][-1] == {"role": "user", "content": ""}
    assert plan["sections"][-1]["kind"] == "new"


def test_trace_shows_what_a_reply_was_generated_from(run):
    first = run.json("ask", "-m", "scripted", "Remember: the code word is heron.")
    second = run.json(
        "ask", "-m", "scripted", "-c", str(first["conversation_id"]), "What is the code word?"
    )
    out = run.ok("trace", str(second["message_id"])).stdout
    assert f"Reply {second['message_id']} in conversation {second['conversation_id']}" in out
    assert "── system" in out and "── window" in out and "── new" in out
    assert "the code word is heron" in out and "What is the code word?" in out
    raw = run.ok("trace", "--raw", str(second["message_id"])).stdout
    assert raw.startswith("--- system ---\n") and raw.rstrip().endswith("What is the code word?")
    trace = run.json("trace", str(second["message_id"]))
    assert trace["message_id"] == second["message_id"]
    assert trace["id"] == second["trace_id"]
    assert {
        "plan",
        "budget",
        "total_tokens",
        "window_ids",
        "recalled_ids",
        "summary_id",
        "params",
        "usage",
        "timings",
        "model",
        "notes",
    } <= set(trace)
    assert trace["plan"]["messages"][-1]["content"] == "What is the code word?"


def test_trace_of_a_user_message_says_only_replies_have_one(run):
    reply = run.json("ask", "-m", "scripted", "hi")
    result = run("trace", str(reply["user_message_id"]))
    assert result.exit_code == 2 and "only generated replies have one" in result.stderr


def test_summaries_list_the_chain_with_the_ranges_they_cover(run, seed, agent_on):
    cid = seed("Long talk", [(f"fact number {i}", f"ok {i}") for i in range(6)])
    assert "no summary yet" in run.ok("summaries", str(cid)).stdout
    # The model writes the summary (method "model"), so its text shows in the listing.
    agent = agent_on(
        runtime=ScriptedRuntime(default="Summary of the facts so far."),
        policy="summary",
        summarizer={"method": "model"},
    )
    first = agent.compact(cid, force=True)
    assert first.status == "compacted"
    out = run.ok("summaries", str(cid)).stdout
    assert f"#1-#{first.covers_through_seq}" in out and "Summary of the facts" in out
    chain = run.json("summaries", str(cid))
    assert len(chain) == 1
    assert {
        "id",
        "covers_from_seq",
        "covers_through_seq",
        "parent_id",
        "depth",
        "content",
        "token_count",
        "model",
        "prompt_version",
        "created_at",
    } <= set(chain[0])
    assert chain[0]["covers_from_seq"] == 1
    full = run.ok("summaries", "--full", str(cid)).stdout
    assert "Summary of the facts so far." in full and "folds in nothing" in full
