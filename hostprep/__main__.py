"""`python -m hostprep`: the same as the `hostprep` command."""

from hostprep.cli import main

main()
