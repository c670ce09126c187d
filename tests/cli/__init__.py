"""The command line: flags, commands, exit codes and what it prints, in-process and as a process."""
