"""Jobs: the queue that runs them, their worker processes, their records on disk, results to wire."""
