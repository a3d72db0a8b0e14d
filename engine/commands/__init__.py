"""One module per CLI command; each exposes run(ctx, args) -> exit status."""
