"""The cabinet station: one always-on process that owns a cabinet's hardware and watches it.

`service.Station` opens the driver once, polls snapshots, runs the controller's supervision rules
(`adc/controller/supervision.py`) on each, records what they find, flags interrupted accesses, and
serves the driver port to clients (`adc/drivers/station.py`). `lease.py` keeps a second station
off the cabinet; `status.py` reads what `adc station status` shows. The station keeps no state
that is not in the database or re-read from the hardware.
"""
