"""Command-line tools run as ``python scripts/<name>.py``; a package so that one can import another."""
