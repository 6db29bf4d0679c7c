"""One decorator that makes an mmltm class usable from every OpenMMLab library.

mmengine resolves an unprefixed ``type='X'`` in the registry of the config's
``default_scope`` and its ancestors only, never in sibling registries. An
mmdet config (``default_scope='mmdet'``) therefore cannot see a class that
lives only in an ``mmltm`` registry. We keep an ``mmltm`` registry (a direct
child of mmengine's root, so ``type='mmltm.X'`` works from any scope) *and*
register the same class object into the mmpretrain, mmdet and mmseg
registries, so that ``type='X'`` works unchanged in their configs.

No shadowing: a name that a library's registry already holds for another
class is never overwritten (no ``force=True``); :func:`register_model` /
:func:`register_hook` raise :class:`RegistryCollisionError` naming both
classes, so the clash shows at ``import mmltm`` instead of a config silently
building our class where the library's was meant. Registering the *same*
class object again (a re-import) is a no-op. A library that registers one of
our names only later (its lazily imported ``<lib>.models``) fails in its own
``register_module`` with mmengine's "already registered" ``KeyError``, also
loudly; ``tests/test_engine/test_registry.py`` imports every library's
models and checks that no name mmltm registers exists there today.

A library that is not installed, or fails on import (e.g. its mmcv version
gate), is skipped; the class is still available under ``mmltm.X``.
"""
import importlib
import logging
from typing import Callable, List, Optional, Type

from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmltm',
                  locations=['mmltm.models'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmltm',
                 locations=['mmltm.engine'])

#: the OpenMMLab libraries whose registries receive every mmltm class
TARGET_LIBRARIES = ('mmpretrain', 'mmdet', 'mmseg')

_logger = logging.getLogger(__name__)


class RegistryCollisionError(KeyError):
    """A library registry already holds another class under an mmltm name."""

    def __str__(self) -> str:  # KeyError would print the repr of the text
        return str(self.args[0]) if self.args else ''

_LOCAL = {'model': MODELS, 'hook': HOOKS}
_ATTR = {'model': 'MODELS', 'hook': 'HOOKS'}


def _library_registry(library: str, kind: str) -> Optional[Registry]:
    try:
        module = importlib.import_module(f'{library}.registry')
    except Exception as err:  # ImportError, or a library's version assert
        _logger.debug('mmltm: %s not usable (%s); skipping', library, err)
        return None
    return getattr(module, _ATTR[kind])


def registered_in(name: str, kind: str = 'model') -> List[str]:
    """Scopes whose ``kind`` registry knows ``name`` (used by tests/tools)."""
    scopes = ['mmltm'] if name in _LOCAL[kind].module_dict else []
    for library in TARGET_LIBRARIES:
        registry = _library_registry(library, kind)
        if registry is not None and name in registry.module_dict:
            scopes.append(registry.scope)
    return scopes


def _register(kind: str, name: Optional[str]) -> Callable[[Type], Type]:
    def decorator(cls: Type) -> Type:
        key = name or cls.__name__
        registries = [_LOCAL[kind]] + [
            registry for registry in (_library_registry(library, kind)
                                      for library in TARGET_LIBRARIES)
            if registry is not None
        ]
        # check all first, so that a clash leaves no registry half-updated
        for registry in registries:
            existing = registry.module_dict.get(key)
            if existing is not None and existing is not cls:
                raise RegistryCollisionError(
                    f'mmltm cannot register {cls.__module__}.'
                    f'{cls.__qualname__} as {key!r} in the {registry.scope} '
                    f'{registry.name} registry: it already holds '
                    f'{existing.__module__}.{existing.__qualname__} under '
                    'that name, and mmltm never shadows a name. Register '
                    'the mmltm class under another name '
                    f'(register_{kind}(name=...)).')
        for registry in registries:
            if key not in registry.module_dict:
                registry.register_module(name=key, module=cls)
        return cls
    return decorator


def register_model(name: Optional[str] = None) -> Callable[[Type], Type]:
    """Register a model class (backbone, neck, head, loss, ...) in the mmltm,
    mmpretrain, mmdet and mmseg ``MODELS`` registries under one name."""
    return _register('model', name)


def register_hook(name: Optional[str] = None) -> Callable[[Type], Type]:
    """Register a hook in the mmltm, mmpretrain, mmdet and mmseg ``HOOKS``."""
    return _register('hook', name)


__all__ = ['MODELS', 'HOOKS', 'register_model', 'register_hook',
           'registered_in', 'TARGET_LIBRARIES', 'RegistryCollisionError']
