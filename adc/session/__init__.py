"""The technician's restock session around the controller's state machine: terminal and script.

The controller's `RestockSession` decides (what may be scanned, which locks to pulse, what gets
recorded) and never waits. This package drives it the way a person or a script does:
- `runner.Runner` owns the waiting: it polls the session while the pocket is unlocked, shows the
  countdown, reacts to refusals, records, moves on, and cleans up after an interrupt (relock or
  flag for recount, never an unlocked pocket without a record). It knows no terminal and no
  simulator: what a person's hands do comes through a `hands.Hands` adapter, time through a
  `Waiter` (adc/waiting.py), and everything it does goes out as `events.Event`s.
- `terminal` is the interactive screen (rich), `script` the TOML script runner (text or JSON
  lines); both render the same events.
- `simhands.SimHands` are the hands of a simulated person at an in-process virtual cabinet. The
  CLI chooses them together with the backend (like python-can's virtual bus or ophyd's sim
  devices); nothing else in this package knows that a cabinet may be simulated.
"""
