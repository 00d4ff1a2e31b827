"""The `deploydeck` subcommands, one module each."""
