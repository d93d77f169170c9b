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
