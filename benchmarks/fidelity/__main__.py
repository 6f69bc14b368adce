"""Run the fidelity benchmark: python -m benchmarks.fidelity --help."""

from benchmarks.fidelity.cli import main

main()
