"""Logging per SPEC §8: the line format, `Log.Level` in Python levels, and the log destinations.

Lines are `YYYY-MM-DD HH:MM:SS.ffffff|PID|message` (UTC) in the log file and on stderr, and
`ipvs-weightman[PID]: message` in syslog. Everything under the "ipvswm" logger goes there.
"""

from __future__ import annotations

import datetime
import io
import logging
import logging.handlers
import os
import socket
import sys
from dataclasses import dataclass

from ipvswm.config.model import GlobalOptions
from ipvswm.loglevels import CHECK_RESULT as CHECK_RESULT
from ipvswm.loglevels import CHECK_STATUS as CHECK_STATUS
from ipvswm.loglevels import KERNEL_OP as KERNEL_OP

logging.addLevelName(CHECK_STATUS, "CHECK_STATUS")
logging.addLevelName(CHECK_RESULT, "CHECK_RESULT")

LOGGER_NAME = "ipvswm"
SYSLOG_IDENT = "ipvs-weightman"
SYSLOG_ADDRESS_ENV = "IPVSWM_SYSLOG_ADDRESS"
DEFAULT_SYSLOG_SOCKET = "/dev/log"
DEFAULT_SYSLOG_UDP = ("127.0.0.1", 514)

SyslogAddress = str | tuple[str, int]
"""A Unix datagram socket path, or a (host, port) UDP address."""

log = logging.getLogger(__name__)


def python_level(log_level: int) -> int:
    """The Python level that shows what `Log.Level=log_level` shows in the original."""
    if log_level <= 0:
        return logging.WARNING
    if log_level <= 4:
        return logging.INFO
    if log_level == 5:
        return CHECK_STATUS
    if log_level <= 9:
        return CHECK_RESULT
    return KERNEL_OP


def _message(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    """The message with its WARNING:/ERROR: prefix and any traceback."""
    if record.levelno >= logging.ERROR:
        prefix = "ERROR: "
    elif record.levelno >= logging.WARNING:
        prefix = "WARNING: "
    else:
        prefix = ""
    text = prefix + record.getMessage()
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    if record.exc_text:
        text = f"{text}\n{record.exc_text}"
    return text


class LineFormatter(logging.Formatter):
    """`YYYY-MM-DD HH:MM:SS.ffffff|PID|message`, time in UTC (file and stderr)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        return f"{stamp:%Y-%m-%d %H:%M:%S.%f}|{record.process}|{_message(record, self)}"


class SyslogFormatter(logging.Formatter):
    """`ipvs-weightman[PID]: message` (syslog adds the time and host itself)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{SYSLOG_IDENT}[{record.process}]: {_message(record, self)}"


class SyslogHandler(logging.handlers.SysLogHandler):
    """A SysLogHandler that knows the check levels and reports a lost syslog once, not per line.

    Like openlog(), an unreachable Unix socket is not fatal: every line retries the connection.
    """

    _priorities = {
        logging.getLevelName(CHECK_STATUS): "info",
        logging.getLevelName(CHECK_RESULT): "info",
    }

    def __init__(self, address: SyslogAddress, facility: int) -> None:
        super().__init__(address, facility=facility)
        self._failed_now = False
        self._failing = not self.connected  # the caller reports this first failure

    @property
    def connected(self) -> bool:
        """Whether the socket is usable (false while a Unix syslog socket is unreachable)."""
        sock: socket.socket | None = getattr(self, "socket", None)
        return sock is not None and sock.fileno() != -1

    def mapPriority(self, levelName: str) -> str:
        return self._priorities.get(levelName) or super().mapPriority(levelName)

    def emit(self, record: logging.LogRecord) -> None:
        self._failed_now = False
        super().emit(record)
        if not self._failed_now and self._failing:
            self._failing = False
            print(f"ipvswm: syslog at {self.address} reachable again", file=sys.stderr)

    def handleError(self, record: logging.LogRecord) -> None:
        self._failed_now = True
        if not self._failing:
            self._failing = True
            error = sys.exc_info()[1]
            print(
                f"ipvswm: cannot send to syslog at {self.address}: {error}; will retry",
                file=sys.stderr,
            )


class LogFileHandler(logging.handlers.WatchedFileHandler):
    """The log file, reopened after rotation; a file that cannot be reopened never raises.

    The standard handler reopens outside its error handling: with the log directory gone or the
    file system read-only, every log call would raise into the daemon (and a signal handler that
    logs would never finish its work). Here the failure is reported once to stderr, the line is
    dropped, and the reopen is retried on the next line.
    """

    _failing = False

    def _open(self) -> io.TextIOWrapper:
        """Open for append; a new file is created 0640 whatever the umask (it names hosts)."""
        fd = os.open(
            self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640
        )
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.reopenIfNeeded()
            if self.stream is None:
                self.stream = self._open()
                self._statstream()
            logging.FileHandler.emit(self, record)
        except OSError as exc:
            if not self._failing:
                self._failing = True
                print(
                    f"ipvswm: cannot write the log file {self.baseFilename}: {exc}; will retry",
                    file=sys.stderr,
                )
            return
        if self._failing:
            self._failing = False
            print(f"ipvswm: log file {self.baseFilename} writable again", file=sys.stderr)


def parse_syslog_address(text: str) -> SyslogAddress:
    """`host:port` or `[v6]:port` → UDP address; anything else is a Unix socket path."""
    if not text.startswith("/"):
        host, sep, port = text.rpartition(":")
        if sep and port.isascii() and port.isdigit():
            return (host.strip("[]") or DEFAULT_SYSLOG_UDP[0], int(port))
    return text


def default_syslog_address() -> SyslogAddress:
    """$IPVSWM_SYSLOG_ADDRESS, else /dev/log if it exists, else UDP 127.0.0.1:514."""
    env = os.environ.get(SYSLOG_ADDRESS_ENV, "").strip()
    if env:
        return parse_syslog_address(env)
    if os.path.exists(DEFAULT_SYSLOG_SOCKET):
        return DEFAULT_SYSLOG_SOCKET
    return DEFAULT_SYSLOG_UDP


def syslog_facility(name: str) -> int:
    """The facility code for a name like `daemon` or `local3` (unknown names: daemon)."""
    key = name.strip().lower().removeprefix("log_")
    code = logging.handlers.SysLogHandler.facility_names.get(key)
    if code is None:
        log.warning("unknown syslog facility %r; using daemon", name)
        return logging.handlers.SysLogHandler.LOG_DAEMON
    return code


@dataclass(frozen=True, slots=True)
class LogSetup:
    """Where log lines go and what is shown: what the options say, in the daemon's situation."""

    path: str = ""  # "" for no log file
    syslog: bool = False
    facility: str = "daemon"
    stderr: bool = False  # only ever true in the foreground
    log_level: int = 1
    syslog_address: SyslogAddress | None = None  # None: default_syslog_address()

    @classmethod
    def from_options(
        cls,
        options: GlobalOptions,
        *,
        foreground: bool,
        syslog_address: SyslogAddress | None = None,
    ) -> LogSetup:
        return cls(
            path=options.log_path,
            syslog=options.log_syslog,
            facility=options.log_syslog_facility,
            stderr=foreground and options.log_stderr,
            log_level=options.log_level,
            syslog_address=syslog_address,
        )


class LogControl:
    """The installed log handlers of the "ipvswm" logger: level changes, reloads, close."""

    def __init__(self, *, foreground: bool, syslog_address: SyslogAddress | None) -> None:
        self.logger = logging.getLogger(LOGGER_NAME)
        self.foreground = foreground
        self.syslog_address = syslog_address
        self.setup: LogSetup | None = None
        self.log_level = 0
        self._handlers: list[logging.Handler] = []

    def apply(self, setup: LogSetup) -> None:
        """Install handlers for `setup`, replacing the previous ones (no line is lost between)."""
        handlers, problems = _build_handlers(setup)
        for handler in handlers:
            self.logger.addHandler(handler)
        old, self._handlers = self._handlers, handlers
        for handler in old:
            self.logger.removeHandler(handler)
            handler.close()
        # A Log.Level changed at run time (`log level N`) survives reloads that do not change it.
        if self.setup is None or self.setup.log_level != setup.log_level:
            self.set_level(setup.log_level)
        self.setup = setup
        for problem in problems:
            if not setup.stderr:  # else the warning below reaches stderr anyway
                print(f"ipvswm: {problem}", file=sys.stderr, flush=True)
            log.warning("%s", problem)

    def set_level(self, log_level: int) -> None:
        """Show what `Log.Level=log_level` shows (the console's `log level N`)."""
        self.log_level = log_level
        self.logger.setLevel(python_level(log_level))

    def reconfigure(self, options: GlobalOptions) -> None:
        """Apply reloaded options (log file, syslog, stderr, level)."""
        self.apply(
            LogSetup.from_options(
                options, foreground=self.foreground, syslog_address=self.syslog_address
            )
        )

    def close(self) -> None:
        """Remove and close every handler this control installed."""
        global _active
        for handler in self._handlers:
            self.logger.removeHandler(handler)
            handler.close()
        self._handlers = []
        self.setup = None
        self.logger.setLevel(logging.NOTSET)
        if _active is self:
            _active = None

    @property
    def handlers(self) -> tuple[logging.Handler, ...]:
        """The handlers currently installed (for tests and `dump status`)."""
        return tuple(self._handlers)


_active: LogControl | None = None


def setup_logging(
    options: GlobalOptions,
    *,
    foreground: bool,
    syslog_address: SyslogAddress | None = None,
) -> LogControl:
    """Configure the "ipvswm" logger from the options; calling it again replaces the handlers."""
    global _active
    if _active is None:
        _active = LogControl(foreground=foreground, syslog_address=syslog_address)
    else:
        _active.foreground = foreground
        _active.syslog_address = syslog_address
    _active.apply(
        LogSetup.from_options(options, foreground=foreground, syslog_address=syslog_address)
    )
    return _active


def _build_handlers(setup: LogSetup) -> tuple[list[logging.Handler], list[str]]:
    """The handlers for a setup, and why any that should exist could not be made."""
    handlers: list[logging.Handler] = []
    problems: list[str] = []
    if setup.path:
        try:
            # Watched: reopened when logrotate moves the file away.
            file_handler = LogFileHandler(setup.path, encoding="utf-8")
        except OSError as exc:
            problems.append(f"cannot open log file {setup.path}: {exc.strerror or exc}")
        else:
            file_handler.setFormatter(LineFormatter())
            handlers.append(file_handler)
    if setup.syslog:
        address = setup.syslog_address or default_syslog_address()
        try:
            syslog_handler = SyslogHandler(address, facility=syslog_facility(setup.facility))
        except OSError as exc:
            problems.append(f"cannot use syslog at {address}: {exc.strerror or exc}")
        else:
            syslog_handler.setFormatter(SyslogFormatter())
            handlers.append(syslog_handler)
            if not syslog_handler.connected:
                problems.append(f"cannot connect to syslog at {address}; will retry")
    if setup.stderr:
        stderr_handler = logging.StreamHandler(sys.stderr)
        stderr_handler.setFormatter(LineFormatter())
        handlers.append(stderr_handler)
    return handlers, problems
