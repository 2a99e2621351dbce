"""The package version."""

__version__ = "0.1.0"
"""ntkc's version (``major.minor.patch``); the changelog says what each version changed.

Example:
  >>> import ntkc
  >>> ntkc.__version__
  '0.1.0'
"""
