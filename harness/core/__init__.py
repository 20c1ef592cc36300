"""The pure core of paybench: values in, values out.

Nothing here reads or writes files, starts processes, opens sockets or reads the clock;
an import-linter contract in pyproject.toml holds it to that. The IO around it (the run
folder, the history, Locust, the target) lives in the modules beside this package.
"""
