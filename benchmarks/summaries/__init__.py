"""Summaries that keep the facts: the share of planted facts a final summary still holds.

    python -m benchmarks.summaries run --setting conversation|5000|20000|50000
                                       --summarizer extractive|model|facts [--out FILE]
    python -m benchmarks.summaries report [--out FILE]

Each `run` measures one setting with one summarizer (the real SmolLM2-135M
behind the model-backed ones) and appends a row to a JSON lines file, so the
slow configurations run as separate short jobs; `report` prints the table.
See `run` for the settings and how a fact is scored.
"""
