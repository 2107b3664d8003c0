"""The command line: a thin layer over the Archive facade.

One module per command group (reading, audit, daemon) plus the demo; `main`
parses, builds the Archive once and maps errors to exit codes. Nothing else
in the project imports this package.
"""

from archiver.cli.main import entry, main

__all__ = ["entry", "main"]
