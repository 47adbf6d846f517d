"""``regularizers.create``: parameters the constructor does not take are a one-line configuration
error; a ``TypeError`` raised inside a constructor is a bug and propagates as one."""
import pytest
from torch import nn

from autodropout import regularizers
from autodropout.commands.cli import main
from autodropout.commands.transfer import baseline_methods
from autodropout.core.errors import ConfigError, UserInputError
from autodropout.regularizers import registry
from autodropout.regularizers.registry import RegularizerArgumentError, RegularizerInfo
from autodropout.tasks import Regularization


class Buggy(nn.Module):
    """A regularizer whose constructor has a bug that raises ``TypeError``."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        self.p = p + "oops"  # the bug


@pytest.fixture
def buggy(monkeypatch):
    entry = RegularizerInfo("buggy", Buggy, "nobody, 2026")
    monkeypatch.setitem(registry._REGISTRY._entries, "buggy", entry)
    return entry


def test_parameters_the_constructor_does_not_take_are_a_config_error():
    with pytest.raises(RegularizerArgumentError, match="regularizer 'dropout': got an unexpected keyword argument 'q'"):
        regularizers.create("dropout", q=0.1)
    with pytest.raises(RegularizerArgumentError, match="regularizer 'targetdrop': missing a required argument: "
                                                       "'channels'"):
        regularizers.create("targetdrop", gamma=0.2)
    # One line in the CLI (a UserInputError), and the TypeError a Python caller expects from a bad call.
    assert issubclass(RegularizerArgumentError, ConfigError) and issubclass(RegularizerArgumentError, TypeError)


def test_a_type_error_inside_a_constructor_propagates_as_a_bug(buggy, capsys):
    for build in (lambda: regularizers.create("buggy", p=0.2), lambda: Regularization(name="buggy", params={"p": 0.2}),
                  lambda: baseline_methods(["buggy:p=0.2"], "vision")):
        with pytest.raises(TypeError, match="unsupported operand") as caught:
            build()
        assert not isinstance(caught.value, UserInputError)
    # The command line lets it through with its traceback instead of printing a one-line error.
    with pytest.raises(TypeError, match="unsupported operand"):
        main(["train", "digits_wrn_quick", "--regularizer", "buggy", "--param", "p=0.2", "--epochs", "1"])
    assert "autodropout: error" not in capsys.readouterr().err


def test_a_bad_value_is_still_a_config_error():
    with pytest.raises(ConfigError, match="regularizer 'dropout': p must be a probability in"):
        Regularization(name="dropout", params={"p": 2})
