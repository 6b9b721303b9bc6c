"""Ingest: files -> elements -> versions -> chunks -> index sync."""
