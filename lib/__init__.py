"""The shared library at the bottom of the house: helpers every app may use and that know no app.

Nothing here imports an app (accounts, audit, billing, clusters, projects, sshgateway) or the wiring in
paas/; import-linter's app-order contract in pyproject.toml checks it. It is not a Django app: no models,
no migrations, no templates.
"""
