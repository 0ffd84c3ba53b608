"""The workspace on disk, the results database (all of drlc's SQL) and stored artifacts."""
