"""The exceptions domain code raises; the CLI turns each into one red line and an exit code."""


class CeLabError(Exception):
    """A failure the user can act on. Its message is shown as one line, without a traceback."""

    exit_code = 1


class UsageError(CeLabError):
    """Bad arguments or configuration (exit code 2, like a command-line usage error)."""

    exit_code = 2


class ParamError(UsageError):
    """A bad argument of an orchestration function (``ce_lab.lab``), whose message names the
    parameter: written with markers, ``«seeds»``, that each front door spells its own way.

    ``str(e)`` spells them as the Python parameters (``seeds``); the CLI spells them as its flags
    (``--seeds``) through ``spelled``. One message, so the two can never say different things.
    """

    def __init__(self, template: str):
        self.template = template
        super().__init__(self.spelled(lambda name: name))

    def spelled(self, spell) -> str:
        """The message with each «name» replaced by ``spell(name)``."""
        import re

        return re.sub(r"«(\w+)»", lambda m: spell(m.group(1)), self.template)


class ConfigError(UsageError):
    """A config value, key or file that cannot be used."""


class DataError(CeLabError):
    """MNIST could not be found, fetched, verified or parsed."""


class OwnDataError(DataError):
    """An IDX file the user supplied (``data.verify_md5: false``) cannot be used; ce-lab never
    replaces it (exit 2, as a bad config)."""

    exit_code = 2


class UnsafeName(UsageError):
    """A name read from disk (a ``run_id`` in meta.json, ...) that is not one plain file name, so
    no path is built from it."""


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
