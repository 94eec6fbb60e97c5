"""Subcommands of `prune8`: each module has register(subparsers) and run(args)."""
