"""``python -m eagerbench.cli``: the command line, as the ``eagerbench`` script runs it."""

from eagerbench.cli import main

main()
