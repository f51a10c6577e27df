"""The etcd client of a director, made from its `Cluster.Etcd*` options (issue 12)."""

from __future__ import annotations

from ipvswm.cluster.etcd import EtcdClient
from ipvswm.cluster.etcd import TlsFiles
from ipvswm.config.model import GlobalOptions


class ClusterStartError(Exception):
    """The cluster store cannot be used at all (bad files, wrong password): the daemon exits."""


def read_password(path: str) -> str:
    """The etcd password from `Cluster.Etcd.PasswordFile` (one line)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline().rstrip("\r\n")
    except OSError as exc:
        raise ClusterStartError(f"Cluster.Etcd.PasswordFile {path}: {exc.strerror}") from exc


def client_for(options: GlobalOptions) -> EtcdClient:
    """The client of `Cluster.Etcd` with its TLS files and user; ClusterStartError if unusable."""
    password = (
        read_password(options.cluster_etcd_password_file)
        if options.cluster_etcd_password_file
        else ""
    )
    tls = TlsFiles(options.cluster_etcd_cacert, options.cluster_etcd_cert, options.cluster_etcd_key)
    try:
        return EtcdClient(
            [e.strip() for e in options.cluster_etcd.split(",") if e.strip()],
            tls=tls,
            user=options.cluster_etcd_user,
            password=password,
        )
    except (OSError, ValueError) as exc:  # unreadable CA, certificate or key
        raise ClusterStartError(f"Cluster.Etcd TLS files: {exc}") from exc
