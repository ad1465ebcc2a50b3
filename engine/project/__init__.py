"""A project on disk and what it says: its folder, the server's record, the random audit, the current labels, the
review queue and finding images."""
