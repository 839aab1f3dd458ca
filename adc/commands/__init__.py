"""Command groups of the `adc` CLI, one module each; heavy imports stay inside the commands."""
