"""Board profiles: one TOML file per board (data only; loaded by prune8_host.boards)."""
