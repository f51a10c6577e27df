"""Refuse a config file that others could edit: its `IPVSADM=` runs as root (SPEC §2)."""

from __future__ import annotations

import os
import stat


def insecure_reason(path: str) -> str | None:
    """Why `path` is not safe to run from (with the fix), or None if it is (or cannot be read)."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # the parser reports a missing or unreadable file
    owners = {0, os.geteuid()}
    if st.st_uid not in owners:
        return (
            f"{path}: owned by uid {st.st_uid}, not root or the daemon's user: any command it "
            f"names (IPVSADM=) would run as this daemon; fix: chown root {path} "
            "(or start with --allow-insecure-config)"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"{path}: writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}): anyone "
            f"who can edit it chooses what runs as this daemon (IPVSADM=); fix: chmod go-w {path} "
            "(or start with --allow-insecure-config)"
        )
    return None
