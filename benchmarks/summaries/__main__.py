"""Run the summaries benchmark: python -m benchmarks.summaries --help."""

from benchmarks.summaries.cli import main

main()
