"""The command line and the Gradio page: parsing, layout, events. No SQL, no torch."""
