"""Images in and the dataset out: ingest (local or on Ray), uploads, export and its splits."""
