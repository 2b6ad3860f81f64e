"""`python -m hostprep`: the same as the `hostprep` command."""

from hostprep.cli.program import main

main()
