"""The standing hostile-input campaign: barcodes, CLI arguments, fuzzed loaders and decoders, crashes."""
