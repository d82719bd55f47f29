"""Per-project data services on the shared infrastructure: a PostgreSQL database and an S3 bucket.

`postgres` and `garage` hold the protocol-level work (SQL as the superuser, Garage's admin API);
`services` joins them to Kubernetes: where the superuser and admin credentials come from, and the
Secret each project gets in its namespace.
"""
