"""The virtual cabinet (ground floor: cabinet, emulators) and the scenario runner (top floor)."""
