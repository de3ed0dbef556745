"""`python -m riverbed` is the `riverbed` command."""

from riverbed.cli import main

main()
