"""drlc device agent: runs shipped ONNX policies in MuJoCo and measures them. Never imports torch."""

__version__ = "0.1.0"
