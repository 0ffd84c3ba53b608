"""Studies: a TOML file naming policies, compressions and targets; the plan of what is missing; running it."""
