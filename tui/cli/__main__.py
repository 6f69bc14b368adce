"""`python -m recursa.tui.cli`: the `recursa` command without the console script."""

from recursa.tui.cli import main

if __name__ == "__main__":
    main()
