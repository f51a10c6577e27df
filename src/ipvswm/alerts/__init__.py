"""Email alerts (SPEC §8): the mailer and its SMTP transport."""

from __future__ import annotations

from ipvswm.alerts.mailer import Mailer
from ipvswm.alerts.mailer import host_lines
from ipvswm.alerts.smtp import SMTP_PORT
from ipvswm.alerts.smtp import MailError
from ipvswm.alerts.smtp import parse_smtp

__all__ = ["SMTP_PORT", "MailError", "Mailer", "host_lines", "parse_smtp"]
