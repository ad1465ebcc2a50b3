"""Procedural demo data: captioned synthetic images for training a small CLIP and a shifted target domain."""
