"""Package discovery for the folder layout of DESIGN.md (metadata lives in pyproject.toml)."""

from setuptools import find_namespace_packages, find_packages, setup

MAPPED_FOLDERS = {
    "llama_stack.providers": "providers",
    "llama_stack.cli": "cli",
    "llama_stack.client": "client-sdk/python/llama_stack_client",
    "llama_stack.distributions": "distributions",
}


def packages_under(package: str, folder: str) -> list[str]:
    # Namespace discovery so data-only folders (distributions/demo) ship as package data too.
    return [package] + [f"{package}.{name}" for name in find_namespace_packages(folder, exclude=["*__pycache__*"])]


packages = find_packages(include=["llama_stack", "llama_stack.*"])
for package, folder in MAPPED_FOLDERS.items():
    packages += packages_under(package, folder)

setup(packages=packages)
