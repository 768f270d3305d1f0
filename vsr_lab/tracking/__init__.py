"""Everything MLflow: set-up, logging, read-back of runs, and the store-creation lock."""
