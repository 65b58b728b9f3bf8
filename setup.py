"""Build hooks (the project's metadata is in pyproject.toml).

The method registry lives at the repository root (``registry.yaml``, its one source). A built
package carries a copy as ``orchestrator/registry.yaml``: ``build_py`` copies it into the build
folder (never into the source tree), and ``sdist`` includes the root file so that a wheel built
from the sdist gets it too. Editable installs read the root file (orchestrator.paths).
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

REGISTRY = "registry.yaml"
HERE = Path(__file__).resolve().parent


class BuildPyWithRegistry(build_py):
    """``build_py`` that also copies the root registry.yaml into the built package."""

    def _target(self) -> Path:
        return Path(self.build_lib) / "orchestrator" / REGISTRY

    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads the repository's file
            self.mkpath(str(self._target().parent))
            self.copy_file(str(HERE / REGISTRY), str(self._target()))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        return outputs if self.editable_mode else [*outputs, str(self._target())]


class SdistWithRegistry(sdist):
    """``sdist`` that includes the root registry.yaml (the build_py hook's source)."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        self.copy_file(str(HERE / REGISTRY), str(Path(base_dir) / REGISTRY))


setup(cmdclass={"build_py": BuildPyWithRegistry, "sdist": SdistWithRegistry})
