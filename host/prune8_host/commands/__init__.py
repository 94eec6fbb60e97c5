"""The `prune8` command line, one module per subcommand group: each has register(sub)
and run functions. Only cli.py imports this package; the work is done in device, files,
twin and suite."""
