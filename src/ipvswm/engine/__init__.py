"""The pure decision engine (SPEC §4)."""
