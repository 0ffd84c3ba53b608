"""Training baselines: hyperparameters, the run itself, its records in the store, and where runs execute."""
