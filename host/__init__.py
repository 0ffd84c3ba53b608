"""drlc host: train, import, compress, deploy and report on deep-RL policies."""

__version__ = "0.1.0"
