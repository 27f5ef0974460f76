"""The native development stack: install, start, check and stop every component."""
