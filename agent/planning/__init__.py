"""recursa.agent.planning: where each turn's prompt is planned under its exact token budget.

`plan.py` is the pure planner (`build_plan`, `compute_budget`, the `PromptPlan`
model whose sections feed the budget bar); `prompt.py` gathers a conversation's
summary, window, pinned and recalled messages from the store and calls it
(`plan_prompt`, the entry point a turn uses).
"""
