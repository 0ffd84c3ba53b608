"""Measuring one policy in one worker process: session, the step loop, the phases of a job."""
