"""The pharmacy's rules: inventory, restock, expiry, recalls, controlled substances, audit.

No hardware I/O, no wall clock, no knowledge of which backend is behind the driver port.
"""
