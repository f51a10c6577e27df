"""Configuration: model and parser (SPEC §2)."""
