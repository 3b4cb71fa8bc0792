"""``python -m clarec ...``: the same command line as ``clarec ...``."""

from clarec.cli import console

console()
