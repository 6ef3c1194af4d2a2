"""Keeping TensorFlow's start-up lines off the terminal.

Importing TensorFlow prints lines from C++ (absl's "All log messages before
absl::InitializeLog() ...", oneDNN's "custom operations are on", the CPU feature guard's
"This TensorFlow binary is optimized ...") straight to file descriptor 2, whatever
``TF_CPP_MIN_LOG_LEVEL`` says. `quiet_tensorflow_startup` catches them: the first import of
``tensorflow`` afterwards runs with descriptor 2 redirected to a temporary file, and every line
that is not such chatter is written to stderr once the import is done. TensorFlow is not imported
here.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

__all__ = ["STARTUP_CHATTER", "quiet_tensorflow_startup"]

STARTUP_CHATTER = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|^[IW]\d{4} [\d:.]+ +\d+ (port|cpu_feature_guard|cpu_utils)\.cc:\d+\]"
    r"|^To enable the following instructions:"
    r"|oneDNN custom operations are on")
"""Lines TensorFlow writes to stderr as it starts, whatever its log level."""


def quiet_tensorflow_startup() -> None:
    """Catch TensorFlow's start-up lines when it is first imported in this process.

    Also sets ``TF_CPP_MIN_LOG_LEVEL=2`` (TensorFlow's own INFO and WARNING lines off),
    overriding the environment's value. Does nothing when TensorFlow is already imported.
    """
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietImport())


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the other finders and runs its import with stderr caught."""

    def find_spec(self, name: str, path: object = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the real finders do the finding
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # as if never wrapped
        with _stderr_without_chatter():
            self.loader.exec_module(module)


@contextmanager
def _stderr_without_chatter() -> Iterator[None]:
    """Redirect descriptor 2 to a temporary file; afterwards write its lines that are not
    `STARTUP_CHATTER` to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode("utf-8", "replace").splitlines(True)
                    if not STARTUP_CHATTER.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
