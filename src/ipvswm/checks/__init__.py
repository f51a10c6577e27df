"""Health checks and checkers (SPEC §3)."""
