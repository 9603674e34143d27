"""Crash-safe state: the checkpoint codec, its envelope and the checkpoint store."""
