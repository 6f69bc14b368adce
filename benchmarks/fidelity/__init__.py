"""Memory fidelity: does the prompt hold the evidence for what was said, however it is asked?

    python -m benchmarks.fidelity [--quick] [--seed 7] [--budgets 1024,2048,4096]
                                  [--configs window,summary,full-text,hybrid]
                                  [--modes imported,live] [--summarizer extractive|model|facts]

`data` generates a seeded conversation of 600 messages over 12 days with planted
facts, and questions about them asked five ways: with the fact's own words, with
other words, with a pronoun after an exchange that names the subject, about a
day, and about two facts from different turns. `measure` asks each question of
four memory configurations (`window`, `summary`, `summary+recall` with full-text
recall, `summary+recall` with hybrid full-text + MiniLM recall) at each budget,
over the conversation imported as a document and over the same conversation
driven live through `Agent.send` (so compaction runs as in a chat). A question's
evidence is recalled when every evidence message is in the prompt plan. `report`
prints one table: rows configuration x mode, columns budget x question kind.

The model is the scripted one (replies come from the generated script) and token
counts use its word tokenizer. Summaries come from the deterministic
`ExtractiveSummarizer` by default, so the numbers measure the memory, not a
small model's summarizing skill; `--summarizer model` lets SmolLM2-135M write
the summaries instead (slow: one model call per compaction), and `--summarizer
facts` uses the fact-keeping default summarizer with SmolLM2-135M.
"""

from benchmarks.fidelity.data import filler_replies, filler_sentences

# Chit-chat for other benchmarks that need plausible filler messages.
FILLER = filler_sentences()
REPLIES = filler_replies()
