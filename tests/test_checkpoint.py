"""Checkpoint folders: round trip, atomic replacement, and one clear error for every broken case."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from models import checkpoint
from models.checkpoint import (
    CheckpointError,
    config_from_dict,
    config_to_dict,
    load_weights,
    read_pretrained,
    save_pretrained,
)


@dataclass(frozen=True)
class TinyConfig:
    width: int = 3
    sizes: tuple[int, ...] = (1, 2)


def tiny_model(width: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(width, 2)


def save_tiny(folder, width: int = 3) -> torch.nn.Module:
    model = tiny_model(width)
    save_pretrained(folder, config_to_dict(TinyConfig(width), "tiny"), model)
    return model


def test_round_trip_restores_config_and_weights(tmp_path):
    model = save_tiny(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    data, weights = read_pretrained(tmp_path / "ckpt")
    config = config_from_dict(TinyConfig, data, "tiny", "here")
    assert config == TinyConfig(3) and isinstance(config.sizes, tuple)
    fresh = torch.nn.Linear(3, 2)
    load_weights(fresh, weights, "here")
    assert torch.equal(fresh.weight, model.weight)


def test_saving_again_replaces_weights_and_keeps_other_files(tmp_path):
    folder = tmp_path / "ckpt"
    save_tiny(folder)
    (folder / "README.md").write_text("card")
    save_tiny(folder, width=5)
    assert (folder / "README.md").read_text() == "card"
    assert json.loads((folder / "config.json").read_text())["width"] == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_save_leaves_old_checkpoint_intact(tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    save_tiny(folder)
    before = (folder / "model.safetensors").read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "write_json", broken)
    with pytest.raises(OSError):
        save_tiny(folder, width=5)
    assert (folder / "model.safetensors").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_missing_folder_and_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        read_pretrained(tmp_path / "nothing")
    folder = tmp_path / "ckpt"
    save_tiny(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no such weights file"):
        read_pretrained(folder)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: no such file"):
        read_pretrained(folder)


def test_corrupt_files_are_clear_errors(tmp_path):
    folder = tmp_path / "ckpt"
    save_tiny(folder)
    (folder / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt safetensors"):
        read_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_pretrained(folder)


def test_wrong_kind_unknown_fields_and_bad_values_are_refused():
    with pytest.raises(CheckpointError, match="holds a 'other' model"):
        config_from_dict(TinyConfig, {"model_type": "other", "width": 3}, "tiny", "here")
    with pytest.raises(CheckpointError, match="unknown config fields"):
        config_from_dict(TinyConfig, {"model_type": "tiny", "depth": 3}, "tiny", "here")


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    save_tiny(tmp_path / "ckpt", width=5)
    _, weights = read_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="weights do not match the config"):
        load_weights(torch.nn.Linear(3, 2), weights, "here")
    with pytest.raises(CheckpointError, match="missing"):
        load_weights(torch.nn.Linear(5, 2), {"weight": weights["weight"]}, "here")


def test_checkpoint_files_are_readable_by_others(tmp_path):
    save_tiny(tmp_path / "ckpt")
    assert (tmp_path / "ckpt").stat().st_mode & 0o755 == 0o755
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "ckpt" / name).stat().st_mode & 0o644 == 0o644
