# Copyright 2026 pilotnet_optimized contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
The package's layout rules, read from the source (nothing is imported).

No import cycle among its modules, counting imports inside functions and ``TYPE_CHECKING`` blocks;
no module reaches for another module's ``_private`` name; nothing that optimises or measures models
imports the ROS nodes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = 'pilotnet_optimized'
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
#: Sub-packages that must stay ROS-free and independent of the nodes that use them.
NO_NODES = (f'{PACKAGE}.optimize', f'{PACKAGE}.evaluate')


def _module_name(path: Path, top: Path = ROOT.parent) -> str:
    parts = list(path.relative_to(top).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob('*.py'))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == '__init__.py'


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + '.')


def _private(name: str) -> bool:
    return name.startswith('_') and not (name.startswith('__') and name.endswith('__'))


def _known(dotted: str) -> str | None:
    """
    Return the package module that importing ``dotted`` loads last.

    It is the longest prefix of ``dotted`` that is a module.
    """
    parts = dotted.split('.')
    for end in range(len(parts), 0, -1):
        candidate = '.'.join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ''
    base = module.split('.') if _is_package(module) else module.split('.')[:-1]
    base = base[:len(base) - node.level + 1]
    return '.'.join(base + ([node.module] if node.module else []))


def _imports(module: str) -> Iterator[tuple[str, int, str | None]]:
    """
    Yield a tuple for every import in ``module``.

    Each is (imported package module, line, private name taken from it or None).
    """
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    aliases: dict[str, str] = {}   # local name -> package module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known(alias.name)
                if target is None:
                    continue
                yield target, node.lineno, None
                if alias.asname:
                    aliases[alias.asname] = target
                else:
                    aliases[alias.name.split('.')[0]] = alias.name.split('.')[0]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            if not _within(source, PACKAGE):
                continue
            for alias in node.names:
                submodule = f'{source}.{alias.name}'
                if submodule in MODULES:
                    yield submodule, node.lineno, None
                    aliases[alias.asname or alias.name] = submodule
                else:
                    target = _known(source)
                    if target is not None:
                        yield target, node.lineno, alias.name if _private(alias.name) else None
    for node in ast.walk(tree):   # module._name, through a name an import bound
        if isinstance(node, ast.Attribute) and _private(node.attr):
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                target = '.'.join([aliases[value.id], *reversed(chain)])
                if target in MODULES and target != module:
                    yield target, node.lineno, node.attr


def _graph() -> dict[str, set[str]]:
    return {
        module: {target for target, _, _ in _imports(module) if target != module}
        for module in MODULES
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _path(graph: dict[str, set[str]], component: list[str]) -> str:
    """
    One cycle through the component's first module, as ``a -> b -> a``.

    For the failure message.
    """
    members, start = set(component), component[0]
    seen, frontier = {start: [start]}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return ' -> '.join(seen[v] + [start])
                if w not in seen:
                    seen[w] = seen[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return ', '.join(component)


def test_the_package_is_found():
    assert f'{PACKAGE}.optimize.methods' in MODULES and f'{PACKAGE}.cli' in MODULES


def test_no_import_cycle_among_the_packages_modules():
    graph = _graph()
    cycles = [_path(graph, c) for c in _cycles(graph)]
    assert not cycles, 'import cycles (function-level imports count):\n' + '\n'.join(cycles)


def test_no_module_imports_another_modules_private_name():
    taken = [f'{MODULES[m].relative_to(ROOT.parent)}:{line}: {name} from {target}'
             for m in MODULES for target, line, name in _imports(m) if name is not None]
    assert not taken, 'private names used across modules:\n' + '\n'.join(taken)


@pytest.mark.parametrize('package', NO_NODES)
def test_optimisation_and_evaluation_do_not_import_the_nodes(package):
    bad = [f'{MODULES[m].relative_to(ROOT.parent)}:{line}: {target}'
           for m in MODULES if _within(m, package)
           for target, line, _ in _imports(m) if _within(target, f'{PACKAGE}.nodes')]
    assert not bad, f'{package} imports {PACKAGE}.nodes:\n' + '\n'.join(bad)


def test_the_checks_see_function_level_and_private_imports(tmp_path, monkeypatch):
    """
    The rules above would pass vacuously if the parser missed imports.

    Check it on a made-up package.
    """
    pkg = tmp_path / PACKAGE
    (pkg / 'optimize').mkdir(parents=True)
    (pkg / '__init__.py').write_text('')
    (pkg / 'optimize' / '__init__.py').write_text('')
    (pkg / 'optimize' / 'a.py').write_text(
        'def f():\n    from pilotnet_optimized.optimize.b import _hidden\n'
    )
    (pkg / 'optimize' / 'b.py').write_text(
        'from . import a\nimport pilotnet_optimized.nodes.x as x\ny = a._z\n_hidden = 1\n'
    )
    (pkg / 'nodes').mkdir()
    (pkg / 'nodes' / '__init__.py').write_text('')
    (pkg / 'nodes' / 'x.py').write_text('')
    fake = {_module_name(p, tmp_path): p for p in sorted(pkg.rglob('*.py'))}
    monkeypatch.setitem(globals(), 'MODULES', fake)
    graph = _graph()
    assert _cycles(graph) == [[f'{PACKAGE}.optimize.a', f'{PACKAGE}.optimize.b']]
    private = {(m, name) for m in fake for _, _, name in _imports(m) if name}
    assert private == {(f'{PACKAGE}.optimize.a', '_hidden'), (f'{PACKAGE}.optimize.b', '_z')}
    assert f'{PACKAGE}.nodes.x' in graph[f'{PACKAGE}.optimize.b']
