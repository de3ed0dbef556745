"""Test support for riverbed and for third-party backends.

`riverbed.testing.conformance.BrokerConformance` is the backend conformance suite: a
pytest test class that a backend's test module subclasses, providing a `broker`
fixture, to run every case of the `Broker` protocol against that backend.

Nothing here is imported by `import riverbed`; the suite imports pytest, so import it
only from tests.
"""

__all__: list[str] = []
