"""Published SAEs, resolved through sae-lens' own registry.

A user names a published SAE the way sae-lens does: ``SAE.from_pretrained(release, sae_id)``,
where the release is an entry of sae-lens' ``pretrained_saes.yaml`` (repository, conversion
function, one folder per sae_id). The project loads it exactly that way (so every conversion
sae-lens knows, e.g. Gemma Scope's ``params.npz``, is sae-lens' own), refuses it when its hook
is not the residual stream of the layer being probed, and records where the files came from:
the repository, the folder, the revision of the cache snapshot and the sha256 of every file of
the folder. With ``HF_HUB_OFFLINE=1`` sae-lens' downloads read the Hugging Face cache that
``hf download <repo_id>`` (or one online ``from_pretrained``) left.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sae_difficulty.utils.errors import InputError


def residual_hook(layer: int) -> str:
    """The TransformerLens hook the study probes: the residual stream after block ``layer``."""
    return f"blocks.{int(layer)}.hook_resid_post"


def require_hook(hook_name: str | None, layer: int, release: str, sae_id: str) -> None:
    """Refuse an SAE that was trained on another hook than the probed layer's residual stream."""
    expected = residual_hook(layer)
    if hook_name != expected:
        raise InputError(
            f"config key 'sae.pretrained.llm': {release}/{sae_id} reads hook {hook_name!r}; expected {expected!r} "
            f"(the residual stream of the probed layer {layer}, llm.layers)"
        )


@dataclass(frozen=True)
class ResolvedFiles:
    """Where a release's SAE lives in the hub cache."""

    repo_id: str
    folder: str
    revision: str | None
    files: dict[str, str]  # path inside the repository -> sha256

    def to_dict(self) -> dict[str, Any]:
        return {"repo_id": self.repo_id, "path": self.folder, "revision": self.revision, "files": dict(sorted(self.files.items()))}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def registry_location(release: str, sae_id: str) -> tuple[str, str]:
    """``(repo_id, folder)`` of ``release``/``sae_id`` in sae-lens' registry; one-line errors for unknown names."""
    from sae_lens.loading.pretrained_saes_directory import (
        get_pretrained_saes_directory,
        get_repo_id_and_folder_name,
    )

    directory = get_pretrained_saes_directory()
    if release not in directory:
        raise InputError(f"config key 'sae.pretrained.llm.release': {release!r} is not a release in sae-lens' registry (pretrained_saes.yaml)")
    ids = directory[release].saes_map
    if sae_id not in ids:
        shown = ", ".join(list(ids)[:5]) + (", ..." if len(ids) > 5 else "")
        raise InputError(f"config key 'sae.pretrained.llm.sae_id': {sae_id!r} is not an SAE of release {release!r}; expected one of {shown}")
    return get_repo_id_and_folder_name(release, sae_id)


def resolved_files(repo_id: str, folder: str) -> ResolvedFiles:
    """The cached files of ``folder`` (a folder, a single file, or a file-name prefix) in the
    snapshot ``refs/main`` of ``repo_id`` names, with their sha256 (read from the cache only)."""
    from huggingface_hub import snapshot_download

    snapshot = Path(snapshot_download(repo_id, local_files_only=True))
    target = snapshot / folder
    if target.is_dir():
        paths = [p for p in target.rglob("*") if p.is_file()]
    elif target.is_file():
        paths = [target]
    else:
        paths = [p for p in snapshot.rglob("*") if p.is_file() and p.relative_to(snapshot).as_posix().startswith(folder)]
    if not paths:
        raise InputError(f"SAE {repo_id}/{folder}: no file of it in the Hugging Face cache snapshot {snapshot}")
    return ResolvedFiles(repo_id, folder, snapshot.name, {p.relative_to(snapshot).as_posix(): _sha256(p) for p in sorted(paths)})


def load_pretrained(release: str, sae_id: str, device: str = "cpu") -> tuple[Any, ResolvedFiles]:
    """``SAE.from_pretrained(release, sae_id)`` (float32) and the files it was read from.

    sae-lens' errors (a name not in the registry, a file missing from an offline cache) become
    one-line InputErrors naming the config key.
    """
    from huggingface_hub.errors import LocalEntryNotFoundError
    from sae_lens import SAE

    repo_id, folder = registry_location(release, sae_id)
    try:
        sae = SAE.from_pretrained(release, sae_id, device=device, dtype="float32")
    except (LocalEntryNotFoundError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(
            f"config key 'sae.pretrained.llm': {release}/{sae_id} ({repo_id}/{folder}) could not be read ({first[:200]}); "
            f"expected it in the Hugging Face cache (hf download {repo_id}) or a reachable hub"
        ) from error
    return sae, resolved_files(repo_id, folder)
