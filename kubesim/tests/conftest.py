"""kubesim's own tests use the public fixtures (the root conftest may also enable the plugin)."""

from kubesim.pytest_plugin import _kubesim_server, kube_api, kubesim  # noqa: F401
