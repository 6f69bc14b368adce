"""recursa.agent.compaction: folding the oldest turns into the running summary.

- `decide.py`: when to compact and what to evict (pure: water marks, whole exchanges).
- `fold.py`: how a decision is run: summarize the evicted turns with the previous
  summary and store the new summary in one transaction (`run_compaction`).
- `triggers.py`: where it happens: before a reply that cannot fit, after a reply
  when the next turn would overflow, and on request.
"""
