"""The VM tier's tests run only inside the VM (`make test-kernel`); elsewhere: not collected."""

from __future__ import annotations

import os

if os.environ.get("IPVSWM_IN_VM") != "1":
    collect_ignore_glob = ["test_*.py"]
