"""The device's model store: uploaded files, their checks, atomic writes."""
