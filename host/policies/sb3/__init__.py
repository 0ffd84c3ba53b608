"""SB3 / RL Zoo checkpoints -> PolicySpec."""
