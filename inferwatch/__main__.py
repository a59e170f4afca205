"""``python -m inferwatch``: the command line."""

from inferwatch.streams.cli import main

main()
