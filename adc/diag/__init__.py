"""Service diagnostics (`adc diag`): the logic behind each sub-command, kept out of the CLI module.

A diagnostics run works on a `Bench` (adc/diag/bench.py): the driver of the cabinet under test plus
the three things that differ between real hardware, the emulators of `adc sim serve` and the
in-process virtual cabinet, each chosen once when the backend is opened:
- how to wait (`waiting.Waiter`: advance simulated time, or sleep in wall time);
- who is standing at the cabinet (`person.Person`: the simulated person where a VirtualCabinet is
  in-process, a prompted engineer on a terminal, or nobody);
- how to reach service functions that are not part of the driver port (`service.ServiceAccess`:
  load-cell commands, address probes).
Nothing below tests "is this simulated?": the procedures only use those three capabilities.
"""
