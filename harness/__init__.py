"""paybench: a Locust-based performance harness for a payments backend."""

__version__ = "0.1.0"
