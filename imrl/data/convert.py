"""Raw files -> ``data/processed/<dataset>/``: run the dataset's reader (registered in
``imrl.registry.DATASETS``) and write the interactions table, its id maps, the side
information and ``reader.json`` (what the reader counted and skipped), ``meta.json`` last."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from imrl import registry
from imrl.data import sources
from imrl.data.interactions import save
from imrl.io import atomic_write_json

READER_STATS = "reader.json"


def convert_paths(dataset: str, paths: Mapping[str, list[Path]], options: Mapping[str, Any] | None,
                  out_dir: str | Path) -> dict[str, Any]:
    target = registry.DATASETS.get(dataset)
    if target is None:
        raise KeyError(f"dataset {dataset!r} has no reader; datasets with one: "
                       + ", ".join(name for name, t in registry.DATASETS.items() if t))
    result = registry.load_target(target)(paths, options or {})
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / READER_STATS, result.stats.as_dict())
    return save(result.data, out_dir)


def convert_dataset(dataset: str, raw_dir: str | Path, out_dir: str | Path,
                    options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Convert the verified (and extracted) raw files under `raw_dir`."""
    return convert_paths(dataset, sources.role_paths(dataset, raw_dir, options), options, out_dir)
