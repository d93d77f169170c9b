import pytest

from occbench.errors import OccbenchError
from occbench.hookspecs import hookimpl
from occbench.plugins import load_plugins

PLUGIN = """
    from occbench.hookspecs import hookimpl

    class TinyMethod:
        pass

    @hookimpl
    def occbench_register_methods(registry):
        registry.add("tiny", TinyMethod)
"""


def test_entry_point_plugin_is_loaded_and_listed(third_party):
    third_party("occbench-tiny", "occbench_tiny", PLUGIN)
    host = load_plugins()
    assert host.methods["tiny"].__name__ == "TinyMethod"
    owner = host.methods.owner("tiny")
    assert (owner.name, owner.distribution, owner.version) == ("occbench_tiny", "occbench-tiny", "1.2.3")
    assert owner.registered == {"methods": ["tiny"]}


def test_plugins_can_be_blocked(third_party, monkeypatch):
    third_party("occbench-tiny", "occbench_tiny", PLUGIN)
    assert "tiny" not in load_plugins(disabled=["occbench_tiny"]).methods
    monkeypatch.setenv("OCCBENCH_DISABLE_PLUGINS", "something_else, occbench_tiny")
    assert "tiny" not in load_plugins().methods


def test_duplicate_names_name_both_distributions(third_party):
    third_party("occbench-tiny", "occbench_tiny", PLUGIN)

    class Other:
        @hookimpl
        def occbench_register_methods(self, registry):
            registry.add("tiny", object)

    with pytest.raises(OccbenchError, match=r"'tiny' is registered twice: by plugin occbench_tiny \(occbench-tiny\)"):
        load_plugins(extra={"other": Other()})


def test_one_entry_point_name_from_two_distributions_is_an_error_naming_both(third_party):
    third_party("occbench-tiny", "occbench_tiny", PLUGIN)
    third_party("occbench-fork", "occbench_fork", PLUGIN, entry="occbench_tiny")  # the same entry-point name
    with pytest.raises(OccbenchError, match=r"plugin occbench_tiny is declared by two distributions, "
                                            r"occbench-\w+ 1.2.3 and occbench-\w+ 1.2.3; uninstall one"):
        load_plugins()
    assert "tiny" not in load_plugins(disabled=["occbench_tiny"]).methods


def test_unknown_name_lists_the_known_ones(third_party):
    third_party("occbench-tiny", "occbench_tiny", PLUGIN)
    with pytest.raises(OccbenchError, match=r"unknown method 'simclr': choose from .*tiny"):
        load_plugins().methods["simclr"]


def test_broken_plugin_is_a_one_line_error(third_party):
    third_party("occbench-broken", "occbench_broken", "raise RuntimeError('boom')\n")
    with pytest.raises(OccbenchError, match="plugin occbench_broken .* failed to load: RuntimeError: boom"):
        load_plugins()
    assert "tiny" not in load_plugins(disabled=["occbench_broken"]).methods


def test_hook_with_a_wrong_name_is_rejected(third_party):
    third_party("occbench-typo", "occbench_typo", """
        from occbench.hookspecs import hookimpl

        @hookimpl
        def occbench_register_method(registry):
            pass
    """)
    with pytest.raises(OccbenchError, match="plugin occbench_typo .* is invalid"):
        load_plugins()


def code_strings(path):
    """The string literals of a module's code: its docstrings and comments left out."""
    import ast

    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_core_never_names_a_builtin_method_imputer_or_protocol():
    """Built-ins are plugins like any other: what the core needs to know of one (its title, its order, which
    stage-1 method it wants, whether it leaves the data as it is, ...) the plugin says itself."""
    from pathlib import Path

    import occbench
    from occbench.catalogue import load_catalogue

    host = load_plugins()
    builtin = {name for kind in ("methods", "imputers", "protocols") for name in host.registries[kind].names()
               if host.registries[kind].owner(name).distribution == "occbench"}
    assert {"skeletonclr", "opstl", "mamp", "knn", "random", "none", "linear", "semi1"} <= builtin
    # the names of the data layer are its own: occlusion kinds ("none", "random"), the catalogue's datasets and
    # the layouts of other code bases that data export writes ("crossclr": CrosSCLR's folders, not the method)
    from occbench.data.export import LAYOUTS

    catalogue = load_catalogue()
    data_names = set(catalogue.occlusions) | set(catalogue.datasets) | set(LAYOUTS)
    forbidden = builtin - data_names
    found = [f"{path.relative_to(Path(occbench.__file__).parent)}:{line}: {value!r}"
             for path in sorted(Path(occbench.__file__).parent.rglob("*.py"))
             for line, value in code_strings(path) if value in forbidden]
    assert not found, "built-in plugin names in the core:\n" + "\n".join(found)
