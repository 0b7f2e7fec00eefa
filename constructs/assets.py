"""Lambda code of Conveyor's handler assets (and of your own), with the handler kit inside.

A handler asset is a folder ``<asset>/`` holding its handler package ``<asset>/<package>/``
(handler strings like ``order_events.handler.handler``). Conveyor's handlers import the shared
building blocks of ``lambdas/handler_kit/handler_kit`` as the top-level package
``handler_kit``: :func:`handler_code` stages ``<asset>/*`` and ``handler_kit/`` together into
one directory, then hands that to ``lambda_.Code.from_asset``. No Docker, no pip: the kit is
plain Python (stdlib, boto3, Powertools from the layer).

The staged directory is named after the SHA-256 of what it holds (relative paths and bytes,
caches and ``requirements.txt`` left out), so two syntheses, from any working directory or
from a pip-installed Conveyor, give the same directory and the same CDK asset hash. It is
written once, atomically (a temporary directory renamed into place), under ``cache_dir``.

Use it for your own handlers too::

    from conveyor.constructs.assets import handler_code
    code = handler_code(Path("lambdas/my_handler"))  # my_handler/ + handler_kit/
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from aws_cdk import aws_lambda as lambda_

# constructs/ and lambdas/ are siblings both in the repo and in the installed package
# (conveyor/constructs, conveyor/lambdas).
LAMBDAS_DIR = Path(__file__).resolve().parent.parent / "lambdas"
HANDLER_KIT_DIR = LAMBDAS_DIR / "handler_kit" / "handler_kit"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "conveyor" / "handler-assets"

# What a handler asset folder holds that must not be deployed: dependencies go to the layer,
# caches would make the asset hash depend on whoever ran the tests or the type checker last.
ASSET_EXCLUDES = (
    "requirements.txt",
    "**/__pycache__",
    "*.pyc",
    "**/.mypy_cache",
    "**/.pytest_cache",
    "**/.ruff_cache",
    "**/.*_cache",  # any other tool's cache (was the remediation asset's own list)
)
# Bump when the staged layout changes.
_LAYOUT_VERSION = b"handler-asset-v1"


def handler_code(
    asset: Path,
    *,
    cache_dir: Path | None = None,
    handler_kit: Path | None = HANDLER_KIT_DIR,
) -> lambda_.Code:
    """The Lambda code of the handler asset folder ``asset`` with the handler kit inside.

    :param asset: the asset root (``lambdas/<name>``); its entries are deployed at the root.
    :param cache_dir: where staged directories are kept.
        Default: ``~/.cache/conveyor/handler-assets``.
    :param handler_kit: the ``handler_kit`` package folder to ship; None ships ``asset`` alone.
    """
    staged = stage_handler_asset(asset, cache_dir=cache_dir, handler_kit=handler_kit)
    return lambda_.Code.from_asset(str(staged), exclude=list(ASSET_EXCLUDES))


def stage_handler_asset(
    asset: Path,
    *,
    cache_dir: Path | None = None,
    handler_kit: Path | None = HANDLER_KIT_DIR,
) -> Path:
    """The content-addressed directory holding ``asset``'s entries and ``handler_kit/``."""
    asset = Path(asset).resolve()
    if not asset.is_dir():
        raise ValueError(f"handler asset {asset} is not a directory")
    files = dict(_files(asset))
    if handler_kit is not None:
        kit = Path(handler_kit).resolve()
        if not (kit / "__init__.py").is_file():
            raise ValueError(f"handler kit {kit} is not a package (no __init__.py)")
        if "handler_kit" in {Path(name).parts[0] for name in files}:
            raise ValueError(f"handler asset {asset} already has a top-level handler_kit")
        files.update((f"handler_kit/{name}", path) for name, path in _files(kit))

    digest = hashlib.sha256(_LAYOUT_VERSION)
    for name in sorted(files):
        digest.update(name.encode() + b"\0")
        digest.update(files[name].read_bytes() + b"\0")
    root = Path(cache_dir or DEFAULT_CACHE_DIR)
    target = root / f"{asset.name}-{digest.hexdigest()[:32]}"
    if target.is_dir():
        return target

    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=root, prefix=f".{asset.name}-"))
    try:
        for name, source in files.items():
            destination = building / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
        os.replace(building, target)  # atomic; another synth may have won the race
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of every regular file below ``root`` that is deployed."""
    for directory, subdirectories, names in os.walk(root):
        relative = Path(directory).relative_to(root)
        subdirectories[:] = sorted(
            d for d in subdirectories if not _excluded((relative / d).as_posix(), d)
        )
        for name in sorted(names):
            path = Path(directory) / name
            posix = (relative / name).as_posix()
            if path.is_file() and not path.is_symlink() and not _excluded(posix, name):
                yield posix, path


def _excluded(relative: str, name: str, patterns: Sequence[str] = ASSET_EXCLUDES) -> bool:
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(name, bare) or fnmatch.fnmatch(relative, pattern):
            return True
    return False
