"""Drivers: the only code that does hardware I/O. The port is in `base.py`, backends by URI in
`registry.py`."""
