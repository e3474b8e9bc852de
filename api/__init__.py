"""api process shell (see docs/architecture.md); filled in by its issue."""
