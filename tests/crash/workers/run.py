"""`python tests/crash/workers/run.py module:app`: what `riverbed run module:app` does.

Kept independent of the CLI so the crash tests exercise `runtime.run_app` directly.
"""

import sys

from riverbed.runtime import load_app, run_app

if __name__ == "__main__":
    run_app(load_app(sys.argv[1]))
