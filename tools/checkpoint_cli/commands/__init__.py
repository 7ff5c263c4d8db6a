"""One module per command (or per group of closely related commands)."""
