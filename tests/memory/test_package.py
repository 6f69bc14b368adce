"""The `recursa.memory` package: lazy re-exports and the import paths other layers use."""

from __future__ import annotations

import subprocess
import sys

import pytest
import recursa.memory


def test_importing_the_package_loads_no_sqlalchemy() -> None:
    """`import recursa.memory` (and its light submodules) leave SQLAlchemy unloaded."""
    code = (
        "import sys, recursa.memory\n"
        "from recursa.memory import errors, locations, records, tokens\n"
        "from recursa.memory import InvalidInputError, MessageRecord\n"
        "print(sorted(m for m in ('sqlalchemy', 'alembic') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", recursa.memory.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    """Each name in `__all__` is importable from the package."""
    assert getattr(recursa.memory, name) is not None


def test_unknown_names_raise_attribute_error() -> None:
    """A name the package does not export is an AttributeError, as for any module."""
    with pytest.raises(AttributeError, match="no_such_name"):
        recursa.memory.no_such_name  # noqa: B018


def test_store_module_keeps_its_input_types() -> None:
    """The input types and UNSET are the same objects from the store module and the package."""
    from recursa.memory import store

    assert store.NewMessage is recursa.memory.NewMessage
    assert store.NewTrace is recursa.memory.NewTrace
    assert store.UNSET is recursa.memory.UNSET
    assert store.Unset is recursa.memory.Unset
