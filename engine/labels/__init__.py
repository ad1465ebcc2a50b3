"""Classes' keys and edits, and labels: from the page, from a CSV or Label Studio, from folder names."""
