"""Utilities: errors, logging, checkpoints, HTML pages, image I/O."""
