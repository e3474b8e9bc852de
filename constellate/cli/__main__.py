"""``python -m constellate.cli``."""

from constellate.cli import main

main()
