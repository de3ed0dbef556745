import sys

if sys.argv[1:2] == ["backends"]:
    from benchmarks.backends.cli import main
else:
    from benchmarks.run import main

raise SystemExit(main(sys.argv[2:] if sys.argv[1:2] == ["backends"] else None))
