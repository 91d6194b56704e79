"""Maps the `tidings.*` packages onto the folders that name the architecture.

`tidings` is a namespace package spread over libs/ and services/; setuptools' automatic
discovery cannot merge one namespace from several roots, so each package is mapped here.
"""

from setuptools import find_namespace_packages, setup

ROOTS = [
    "libs/common",
    "libs/cli",
    "services/gateway",
    "services/responder",
    "services/memory",
    "services/store",
]

packages: list[str] = []
package_dir: dict[str, str] = {}
for root in ROOTS:
    for package in find_namespace_packages(root, include=["tidings.*"]):
        packages.append(package)
        package_dir[package] = f"{root}/{package.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
