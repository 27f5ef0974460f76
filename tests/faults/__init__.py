"""Fault injectors: run a service with a crash point patched in from the test side."""
