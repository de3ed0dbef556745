import sys

command = sys.argv[1:2]
if command == ["backends"]:
    from benchmarks.backends.cli import main
elif command == ["flows"]:
    from benchmarks.flows.cli import main
else:
    from benchmarks.run import main

raise SystemExit(main(sys.argv[2:] if command in (["backends"], ["flows"]) else None))
