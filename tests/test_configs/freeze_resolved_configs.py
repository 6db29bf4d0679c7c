"""Write the resolved form of every config under ``configs/`` to a JSON file,
the frozen reference ``test_resolved_configs.py`` compares the configs with.

    python tests/test_configs/freeze_resolved_configs.py \\
        --out tests/test_configs/data/resolved_configs.json

Run it on the tree whose configs are the reference (it was run on main at
fac12ce, before the configs were renamed and the toy configs rebased onto
``configs/toy/_base_/``), not on the tree under test: a reference written
from the configs it checks could not fail.

Each config is resolved by mmengine (``Config.fromfile(path).to_dict()``)
and encoded by :func:`encode`, which keeps what JSON would blur (tuples vs
lists) so that the comparison is exact.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[2]


def encode(value: Any) -> Any:
    """A JSON-safe form of a resolved config value that tells a tuple from a
    list (``{'__tuple__': [...]}``) and keeps dict keys in sorted order.

    Args:
        value (Any): a value of ``Config.to_dict()``.

    Returns:
        Any: the encoded value.
    """
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in sorted(value.items())}
    if isinstance(value, tuple):
        return {'__tuple__': [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f'config value {value!r} of type {type(value).__name__} '
                    'has no JSON form here')


def config_paths(root: Path) -> List[str]:
    """Every config file below ``root/configs`` (bases excluded), relative
    to ``root``."""
    return sorted(
        str(p.relative_to(root)) for p in (root / 'configs').rglob('*.py')
        if '_base_' not in p.parts)


def resolve_all(root: Path) -> Dict[str, Any]:
    """``{path: encoded resolved config}`` for every config of ``root``."""
    from mmengine.config import Config
    return {
        path: encode(Config.fromfile(str(root / path)).to_dict())
        for path in config_paths(root)
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', type=Path, default=REPO,
                        help='the repository whose configs are resolved')
    parser.add_argument('--out', type=Path, required=True)
    args = parser.parse_args(argv)
    resolved = resolve_all(args.root.resolve())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # one compact line per config: small, and a diff names the config
    lines = [
        f'{json.dumps(path)}: '
        f'{json.dumps(config, sort_keys=True, separators=(",", ":"))}'
        for path, config in sorted(resolved.items())
    ]
    args.out.write_text('{\n' + ',\n'.join(lines) + '\n}\n')
    print(f'{len(resolved)} configs -> {args.out}', file=sys.stderr)


if __name__ == '__main__':
    main()
