"""The package's one C extension, beside pyproject.toml (which holds everything else).

``functions.csv_count._scan`` is the native core of csv_row_count's record counter.
It is optional: where it does not build (no C compiler), installing still succeeds
and the counter runs its pure-Python reference. It is compiled for the baseline of
the target (no ``-march``): the AVX2 kernel is chosen at run time, by CPU detection.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup

_FLAGS = [] if sys.platform == "win32" else ["-O3", "-std=c11", "-Wall", "-Wextra"]

setup(
    ext_modules=[
        Extension(
            "functions.csv_count._scan",
            ["functions/csv_count/_scan.c"],
            optional=True,
            extra_compile_args=_FLAGS,
        )
    ]
)
