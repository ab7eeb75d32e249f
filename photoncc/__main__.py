"""``python -m photoncc``: the same as the ``photoncc`` command."""
from .cli import entry

entry()
