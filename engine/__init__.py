"""Models, ingest, zero-shot, self-training and export: everything that computes. Reads and writes via `storage`."""
