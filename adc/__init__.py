"""adc: software for a hospital automated dispensing cabinet.

Kept import-free on purpose: `adc --help` must not pay for sqlmodel, pymodbus, simpy or biip.
"""

__version__ = "0.1.0"
