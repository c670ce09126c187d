"""The command line: click commands, and the console (what a person sees). The only place that
prints, installs signal handlers and picks exit codes.

May import everything.
"""

from dispatcher.cli.commands import main

__all__ = ["main"]
