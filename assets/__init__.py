"""Data only: the embedded demo model, prompt templates, the demo data recipe. Nothing here runs."""
