"""Example applications built on riverbed; each one is run by the test suite."""
