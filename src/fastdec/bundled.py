"""Bundled models: names that resolve to export directories shipped inside the package."""

from pathlib import Path

BUNDLED_DIR = Path(__file__).parent / "assets" / "models"


def bundled_models() -> list[str]:
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / "config.json").is_file())


def resolve_model(name_or_dir: str | Path) -> Path:
    """An existing directory as is; otherwise a bundled model name; otherwise a clear error."""
    path = Path(name_or_dir)
    if str(name_or_dir) and path.is_dir():  # Path("") is the working directory: not a model
        return path
    if str(name_or_dir) in bundled_models():  # names only: no path leads out of BUNDLED_DIR
        return BUNDLED_DIR / str(name_or_dir)
    raise FileNotFoundError(
        f"no model directory {str(name_or_dir)!r} and no bundled model of that name "
        f"(bundled: {bundled_models() or 'none'})"
    )
