"""Director pairs: admin state shared through etcd (issue 12)."""
