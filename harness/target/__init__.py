"""The reference payments API: the built-in target every run and test can use.

``process.ReferenceTarget`` starts it as a subprocess; ``server.serve`` runs it in the
foreground; ``auth`` holds PhonePe's webhook signature. Importing this package is cheap:
FastAPI and uvicorn load only in the modules that serve.
"""

from harness import __version__

# What /api/health reports as "version"; runs record it to refuse unsafe comparisons.
TARGET_VERSION = __version__

# The real back ends, by the environment: read by `python -m harness.target` (as the
# defaults of --database-url and --redis-url) and by ReferenceTarget (`paybench run`).
DATABASE_URL_ENV = "PAYBENCH_TARGET_DATABASE_URL"
REDIS_URL_ENV = "PAYBENCH_TARGET_REDIS_URL"
