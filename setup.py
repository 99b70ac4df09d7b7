"""The compiled part of the package (everything else is in pyproject.toml): byte scans for the
ingest hot path, with a pure-Python fallback used when this extension could not be built."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("replaylens.streams._scan", ["streams/_scan.c"], optional=True,
                             extra_compile_args=["-O2"])])
