"""Test support for riverbed and for third-party backends.

`riverbed.testing.conformance.BrokerConformance` is the backend conformance suite: a
pytest test class that a backend's test module subclasses, providing a `broker`
fixture, to run every case of the `Broker` protocol against that backend.

`MockClock` is virtual time for flows under test (`App(clock=MockClock())`).

Nothing here is imported by `import riverbed`; the conformance suite imports pytest, so
import it only from tests.
"""

from riverbed.testing.clock import MockClock

__all__ = ["MockClock"]
