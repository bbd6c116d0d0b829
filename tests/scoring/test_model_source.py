"""Which model a scoring run uses: pinning a spec once, then resolving it to a folder to load."""

from __future__ import annotations

from pathlib import Path

from skinattn.registry import Registry
from skinattn.scoring import pin_model, resolve_model


def test_an_alias_is_pinned_to_the_version_it_names_now(model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    registry = Registry(str(tmp_path / "registry"))
    registry.register(model_dir, {"accuracy": 0.5})
    registry.register(model_dir, {"accuracy": 0.6})
    registry.promote("v1", force=True)

    def no_download(*args, **kwargs):
        raise AssertionError("pinning must not download the model")

    with monkeypatch.context() as patch:
        patch.setattr(Registry, "fetch", no_download)
        pinned = pin_model("production", registry.uri)
        names = [pin_model(spec, registry.uri).name for spec in ("latest", "2")]
    assert pinned.name == "v1" and names == ["v2", "v2"]
    registry.promote("v2", force=True)  # a promotion after pinning does not change what was pinned...
    assert pinned.name == "v1" and resolve_model(pinned.name, registry.uri).version == "v1"
    assert resolve_model("production", registry.uri).version == "v2"  # ...only what a new lookup finds


def test_a_model_folder_is_used_in_place(model_dir: Path) -> None:
    pinned = pin_model(str(model_dir), "unused-registry-root")
    assert pinned.folder == model_dir and pinned.name == str(model_dir) and pinned.record is None
    resolved = resolve_model(str(model_dir))
    assert resolved.directory == model_dir and resolved.version.startswith(f"{model_dir.name}@")

