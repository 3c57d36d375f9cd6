"""The errors a ``churnwatch`` command reports as one line on stderr with exit code 2 instead of a
traceback: the user's own (:class:`UserError`) and those of the layers below that a user can act on."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; printed as one line."""


def known_errors() -> tuple[type[BaseException], ...]:
    from devtools.broker import BrokerError
    from pipeline.config.fields import SettingsError
    from pipeline.config.policy_file import PolicyError
    from pipeline.kafka.connection import ConnectError
    from pipeline.kafka.topics import TopicError
    from pipeline.model.registry import RegistryError
    from pipeline.model.scoring import ModelError
    from pipeline.worker.store import StateDirInUse
    from training.data.asof import AsOfError
    from training.data.export import ExportError
    from training.data.readers import LogFormatError
    from training.data.spool import SpoolError
    from training.fit.config import TrainingError

    return (UserError, SettingsError, BrokerError, RegistryError, ModelError, TopicError, PolicyError, ConnectError,
            TrainingError, LogFormatError, ExportError, SpoolError, AsOfError, StateDirInUse)
