"""The version of logaudit, `logaudit.__version__` (the same as pyproject.toml's).

>>> __version__
'0.1.0'
"""

__version__ = "0.1.0"
