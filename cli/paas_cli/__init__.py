"""The `paas` command-line client. It talks only to the public REST API (/api/v1/) and the WebSockets."""

__version__ = "0.1.0"
