"""One module per kind of energy meter; ``base`` is what they share."""
