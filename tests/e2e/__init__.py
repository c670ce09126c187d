"""Whole command-line scenarios: the real dispatcher against the emulator over loopback sockets."""
