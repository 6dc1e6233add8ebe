"""``python -m jbatch`` is the ``jbatch`` command."""

from jbatch.cli import entry

entry()
