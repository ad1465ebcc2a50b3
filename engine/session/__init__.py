"""One project opened for the page or a command: the workspace, the round runner, the read-only commands and the
files the page may serve."""
