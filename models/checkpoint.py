"""Checkpoint folders in the Hugging Face layout: config.json + model.safetensors.

Every model of the project is stored the same way, so that one loader serves
them all and a checkpoint is readable by other tools: a JSON config that
names the model kind (`model_type`) and its hyper-parameters, and the weights
in safetensors (no pickle is ever loaded). Writing is atomic: the folder is
assembled under a temporary name and swapped in, so a crash leaves either the
old checkpoint or the new one, never a mix. Every way a checkpoint can be
unusable ends in one `CheckpointError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

ConfigT = TypeVar("ConfigT")


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line meant for the user."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed over `path`, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; checkpoints are shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically (tensors are made contiguous, CPU copies)."""
    flat = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=metadata)


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file; missing or corrupt files raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt safetensors file ({str(exc).splitlines()[0]})") from None


def weights_digest(folder: str | os.PathLike) -> str:
    """SHA-256 of a model folder's weights file: what identifies a trained model, whatever its path."""
    return hashlib.sha256((Path(folder) / WEIGHTS_NAME).read_bytes()).hexdigest()


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON object; missing or malformed files raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def config_to_dict(config: Any, model_type: str) -> dict[str, Any]:
    """A dataclass config as the JSON object stored in config.json."""
    return {"model_type": model_type, **dataclasses.asdict(config)}


def build_dataclass(cls: type[ConfigT], values: dict[str, Any], where: str) -> ConfigT:
    """A (possibly nested) dataclass from JSON values, refusing unknown fields.

    JSON has no tuples, so lists become tuples; nested dataclass fields are
    built from nested objects.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise CheckpointError(f"{where}: unknown config fields {unknown}")
    kwargs = {}
    for name, value in values.items():
        default = fields[name].default
        if default is dataclasses.MISSING and fields[name].default_factory is not dataclasses.MISSING:
            default = fields[name].default_factory()
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = build_dataclass(type(default), value, where)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: invalid config ({exc})") from None


def config_from_dict(cls: type[ConfigT], data: dict[str, Any], model_type: str, where: str) -> ConfigT:
    """Rebuild a model config from config.json, refusing another model kind."""
    found = data.get("model_type")
    if found != model_type:
        raise CheckpointError(f"{where}: holds a {found!r} model, expected {model_type!r}")
    return build_dataclass(cls, {k: v for k, v in data.items() if k != "model_type"}, where)


def save_pretrained(folder: str | os.PathLike, config: dict[str, Any], model: torch.nn.Module) -> None:
    """Write config.json and model.safetensors of `model` into `folder`, replacing it atomically."""
    write_pretrained(folder, config, model.state_dict())


def write_pretrained(folder: str | os.PathLike, config: dict[str, Any], tensors: dict[str, torch.Tensor],
                     files: dict[str, str] | None = None, copies: dict[str, Path] | None = None) -> None:
    """Write config.json, model.safetensors, text `files` and `copies` (name -> a file or folder to copy)
    into `folder`, replacing it atomically.

    Other files already in the folder (a model card, say) are carried over unless `files` replaces them.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    os.chmod(staging, 0o755)
    try:
        if folder.is_dir():
            for item in folder.iterdir():
                if item.name not in (CONFIG_NAME, WEIGHTS_NAME) and item.is_file():
                    shutil.copy2(item, staging / item.name)
        write_tensors(staging / WEIGHTS_NAME, tensors)
        write_json(staging / CONFIG_NAME, config)
        for name, text in (files or {}).items():
            (staging / name).write_text(text)
        for name, source in (copies or {}).items():
            if Path(source).is_dir():
                shutil.copytree(source, staging / name)
            else:
                shutil.copy2(source, staging / name)
        retired = folder.with_name(f".{folder.name}.old")
        if folder.exists():
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(folder, retired)
        os.replace(staging, folder)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_pretrained(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read (config, weights) from a checkpoint folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    return read_json(folder / CONFIG_NAME), read_tensors(folder / WEIGHTS_NAME)


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], where: str) -> None:
    """Copy weights into a model, refusing missing, unexpected or mis-shaped tensors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"{where}: weights do not match the config ({detail})")
    for name, tensor in weights.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{where}: weights do not match the config ({name} is {tuple(tensor.shape)}, "
                f"expected {tuple(expected[name].shape)})"
            )
    model.load_state_dict(weights)


ModelT = TypeVar("ModelT", bound=torch.nn.Module)


def save_model(model: torch.nn.Module, folder: str | os.PathLike, model_type: str) -> None:
    """Save a model whose `config` is a dataclass, as `model_type`."""
    save_pretrained(folder, config_to_dict(model.config, model_type), model)


def load_model(folder: str | os.PathLike, model_cls: type[ModelT], config_cls: type, model_type: str) -> ModelT:
    """Rebuild `model_cls(config)` from a checkpoint folder holding a `model_type` model, in eval mode."""
    data, weights = read_pretrained(folder)
    model = model_cls(config_from_dict(config_cls, data, model_type, str(folder)))
    load_weights(model, weights, str(folder))
    return model.eval()
