"""The exceptions domain code raises; the CLI turns each into one red line and an exit code."""


class CeLabError(Exception):
    """A failure the user can act on. Its message is shown as one line, without a traceback."""

    exit_code = 1


class UsageError(CeLabError):
    """Bad arguments or configuration (exit code 2, like a command-line usage error)."""

    exit_code = 2


class ConfigError(UsageError):
    """A config value, key or file that cannot be used."""


class DataError(CeLabError):
    """MNIST could not be found, fetched, verified or parsed."""


class MissingDependency(CeLabError, ImportError):
    """An optional library a feature needs is not installed; the message names the extra."""


def require(module: str, extra: str, feature: str):
    """``import module``, or MissingDependency naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(f"{feature} needs {module.split('.')[0]}, which is not installed: "
                                f'pip install "ce-lab[{extra}]"') from None
