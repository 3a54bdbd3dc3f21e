"""Models: lookup by name (filled in by the lead)."""
