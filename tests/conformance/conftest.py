import pytest

# The suite lives in the package (for third-party backends), outside pytest's rewriting
# of test modules; register it so failed asserts show their operands.
pytest.register_assert_rewrite("riverbed.testing.conformance")
