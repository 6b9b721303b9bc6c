"""Canon's composition root: settings, the CLI and the API app."""

from ingest import offline  # noqa: F401  (no telemetry, no model downloads, before anything else)
