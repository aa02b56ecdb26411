"""The package's native extensions, beside pyproject.toml (which holds everything else).

``functions.csv_count._scan`` (C) is the native core of csv_row_count's record
counter, compiled for the baseline of the target (no ``-march``): the AVX2 kernel is
chosen at run time, by CPU detection. ``functions.json_canonical._jcs`` (Rust, through
setuptools-rust and PyO3) is json_canonicalize's RFC 8785 core. Both are optional:
where one does not build (no C compiler, no Rust toolchain), installing still
succeeds and the function runs its pure-Python reference.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools_rust import Binding, RustExtension

_FLAGS = [] if sys.platform == "win32" else ["-O3", "-std=c11", "-Wall", "-Wextra"]

setup(
    ext_modules=[
        Extension(
            "functions.csv_count._scan",
            ["functions/csv_count/_scan.c"],
            optional=True,
            extra_compile_args=_FLAGS,
        )
    ],
    rust_extensions=[
        RustExtension(
            "functions.json_canonical._jcs",
            path="functions/json_canonical/native/Cargo.toml",
            binding=Binding.PyO3,
            py_limited_api=True,
            optional=True,
            # setuptools-rust builds in place (pip install -e, as make does) in debug
            # mode unless told: measured 10x slower than the pure-Python path.
            debug=False,
        )
    ],
)
