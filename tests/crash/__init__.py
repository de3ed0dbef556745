"""Crash-safety tests: real consumer processes killed with SIGKILL and stopped with SIGTERM."""
