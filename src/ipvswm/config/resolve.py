"""Addresses in the config: IP literals, bracketed IPv6, host names via an injectable resolver."""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable

Resolver = Callable[[str], list[str]]
"""Name -> addresses. Raises (or returns []) when the name cannot be resolved."""

_LABEL_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_DOTTED_RE = re.compile(r"[0-9.]+")


def system_resolver(timeout: float = 2.0) -> Resolver:
    """A resolver using socket.getaddrinfo (so /etc/hosts too), bounded by `timeout` per name."""

    def resolve(name: str) -> list[str]:
        outcome: list[list[str] | BaseException] = []
        done = threading.Event()

        def lookup() -> None:
            try:
                infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
                outcome.append([str(info[4][0]) for info in infos])
            except BaseException as exc:  # handed to the caller's thread
                outcome.append(exc)
            finally:
                done.set()

        # getaddrinfo cannot be cancelled: a daemon thread lets a hung lookup be abandoned.
        threading.Thread(target=lookup, name=f"resolve {name}", daemon=True).start()
        if not done.wait(timeout):
            raise TimeoutError(f"lookup timed out after {timeout:g} s")
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    return resolve


def split_host_port(text: str) -> tuple[str, bool, list[str]]:
    """Split `HOST[:PORT[:PORT]]` or `[IPV6][:PORT[:PORT]]` into host, bracketed, port fields.

    Raises ValueError for an unbracketed IPv6 address, a missing `]` or an empty part.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("missing ']' after IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("expected ':PORT' after ']'")
        ports = rest[1:].split(":") if rest else []
        bracketed = True
    else:
        host, *ports = text.split(":")
        bracketed = False
        if len(ports) > 2:
            raise ValueError("an IPv6 address must be written in brackets, e.g. [2001:db8::1]:80")
    if not host:
        raise ValueError("missing address")
    if any(p == "" for p in ports):
        raise ValueError("missing port after ':'")
    return host, bracketed, ports


def valid_hostname(name: str) -> bool:
    """Whether `name` is a syntactically valid host name or IPv4 address (a trailing dot is ok)."""
    labels = name.removesuffix(".").split(".")
    return len(name) <= 253 and all(_LABEL_RE.fullmatch(label) for label in labels)


def valid_ipv6(text: str) -> bool:
    """Whether `text` (what stood in brackets) is an IPv6 address."""
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


class AddressResolver:
    """Turns the HOST part of a VS or host line into a normalised IP address, caching names."""

    def __init__(self, resolver: Resolver | None) -> None:
        self._resolver = resolver
        self._cache: dict[str, str | ValueError] = {}
        self.lookups = True  # off: names are not resolved (a file already rejected)

    def address(self, host: str, bracketed: bool) -> str:
        """The normalised address of `host`; raises ValueError with an operator-friendly message."""
        if bracketed:
            try:
                if "%" in host:  # IPVS has no scoped (link-local zone) addresses
                    raise ValueError(host)
                return ipaddress.IPv6Address(host).compressed
            except ValueError:
                raise ValueError(f"bad IPv6 address '{host}'") from None
        if _DOTTED_RE.fullmatch(host):
            try:
                return ipaddress.IPv4Address(host).compressed
            except ValueError:
                raise ValueError(f"bad IPv4 address '{host}'") from None
        if not valid_hostname(host):
            raise ValueError(f"bad address '{host}': expected an IPv4 address, [IPv6] or host name")
        cached = self._cache.get(host)
        if cached is None and not self.lookups:
            raise ValueError(f"host name '{host}' not resolved: too many errors already")
        if cached is None:
            cached = self._cache[host] = self._lookup(host)
        if isinstance(cached, ValueError):
            raise cached
        return cached

    def prefetch(self, hosts: list[str], workers: int = 16) -> None:
        """Resolve the names among `hosts` concurrently, at most `workers` at a time, into the
        cache: a dead resolver then costs one timeout, not one per name."""
        if not self.lookups:  # the file is already rejected: nobody sees what a lookup finds
            return
        names = sorted(
            {h for h in hosts if not _DOTTED_RE.fullmatch(h) and valid_hostname(h)}
            - set(self._cache)
        )
        if len(names) < 2:
            return
        if self._resolver is None:
            self._resolver = system_resolver()
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(workers, len(names))) as pool:
            for name, result in zip(names, pool.map(self._lookup, names), strict=True):
                self._cache[name] = result

    def _lookup(self, name: str) -> str | ValueError:
        if self._resolver is None:
            self._resolver = system_resolver()
        try:
            results = self._resolver(name)
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            return ValueError(f"cannot resolve host name '{name}': {reason}")
        v4: str | None = None
        v6: str | None = None
        for result in results:
            try:
                ip = ipaddress.ip_address(str(result).partition("%")[0])
            except ValueError:
                continue
            if ip.version == 4 and v4 is None:
                v4 = ip.compressed
            elif ip.version == 6 and v6 is None:
                v6 = ip.compressed
        found = v4 or v6
        if found is None:
            return ValueError(f"cannot resolve host name '{name}': no address found")
        return found
