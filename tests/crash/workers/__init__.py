"""App modules and scripts that the crash tests run in subprocesses."""
