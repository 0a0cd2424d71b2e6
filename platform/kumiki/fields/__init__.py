"""Field types: one module per type, each defining one FieldType subclass.

The registry imports every module of this package and indexes the subclasses by ``type_name``.
"""
from __future__ import annotations

import importlib
import pkgutil

from kumiki.fields.base import FieldType

_REGISTRY: dict[str, FieldType] = {}


def _load() -> None:
    if _REGISTRY:
        return
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_") or mod.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, FieldType) and obj.type_name and obj.__module__ == module.__name__:
                if obj.type_name in _REGISTRY:
                    raise RuntimeError(f"field type {obj.type_name} defined twice")
                _REGISTRY[obj.type_name] = obj()


def get(type_name: str) -> FieldType:
    _load()
    return _REGISTRY[type_name]


def all_types() -> dict[str, FieldType]:
    _load()
    return dict(_REGISTRY)
