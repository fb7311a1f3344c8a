"""One writer per state machine, held by the ORM: a status changes only inside its writer.

`Release.status` is written by `releases.catalog.services._transition`, `Operation.status` by
`strategies.operations.transitions.operation_transition`. Each writer locks the row, checks the edge against its
table, updates conditionally and records the audit event; it holds `status_writer(Model)` around its
UPDATE. Anywhere else the models refuse, with `StatusWriteRefused` naming what was refused:

- `save()` of an existing row whose status differs from the one in the database;
- `QuerySet.update(status=…)` and `bulk_update(…, ["status", …])`;
- creating a row (`save()`, `create()`, `bulk_create()`) in any status but the field's default, the
  state machine's initial one: history is played through the services, never written as a result.

Test fixtures and benchmarks that must start from a given state say so with `arranging_state()`;
product code never does (tests/releases/test_status_writers.py scans portal/, releases/ and strategies/
for it, and for any status write outside the two writers). Raw SQL is outside the ORM's reach: the same
scan looks for UPDATE or INSERT statements on the two tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

from django.db import models

_ANY = "*"  # arranging_state(): every model's status may be written
_writing: ContextVar[frozenset[str]] = ContextVar("slipway_status_writers", default=frozenset())


class StatusWriteRefused(Exception):
    """A status written outside its state machine's writer: a programming error, never shown to a person."""


@contextmanager
def status_writer(model: type[models.Model]) -> Iterator[None]:
    """Held by `model`'s one writer around its guarded UPDATE; nothing else enters it."""
    token = _writing.set(_writing.get() | {model._meta.label})
    try:
        yield
    finally:
        _writing.reset(token)


@contextmanager
def arranging_state() -> Iterator[None]:
    """Test fixtures and benchmarks only: rows may be created or put in any status (no audit, no checks)."""
    token = _writing.set(_writing.get() | {_ANY})
    try:
        yield
    finally:
        _writing.reset(token)


def _writer_holds(model: type[models.Model]) -> bool:
    held = _writing.get()
    return _ANY in held or model._meta.label in held


def _initial_status(model: type[models.Model]) -> str:
    return model._meta.get_field("status").default


def _name(model: type[models.Model]) -> str:
    return str(model._meta.verbose_name)


def _shown(value: Any) -> str:
    """A status as written in the code's own terms: 'succeeded', not OperationStatus.SUCCEEDED."""
    return repr(str(value)) if isinstance(value, str) else repr(value)


def _article(model: type[models.Model]) -> str:
    name = _name(model)
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def _refuse(model: type[StatusGuardedModel], what: str) -> StatusWriteRefused:
    return StatusWriteRefused(
        f"Refused: {what}. Only {model.STATUS_WRITER} writes the status of {_name(model)} rows: it checks the edge "
        f"and records the audit event in the same transaction. Call the service for the change you mean (a fixture "
        f"that needs a starting state wraps its setup in portal.core.status_guard.arranging_state())."
    )


def _refuse_creation(model: type[StatusGuardedModel], objs: Iterable[models.Model]) -> None:
    if _writer_holds(model):
        return
    initial = _initial_status(model)
    for obj in objs:
        status = str(getattr(obj, "status", initial))
        if status != initial:
            raise _refuse(
                model,
                f"creating {_article(model)} with status {status!r}; a new {_name(model)} starts as {_shown(initial)} "
                "and its history is played through the services",
            )


class StatusGuardedQuerySet(models.QuerySet):
    """`update()`, `bulk_update()` and `bulk_create()` that refuse status writes outside the writer."""

    def update(self, **kwargs: Any) -> int:
        if "status" in kwargs and not _writer_holds(self.model):
            raise _refuse(
                self.model,
                f"QuerySet.update(status={_shown(kwargs['status'])}) on {self.model._meta.verbose_name_plural}",
            )
        return super().update(**kwargs)

    def bulk_update(self, objs: Iterable[models.Model], fields: Sequence[str], **kwargs: Any) -> int:
        if "status" in fields and not _writer_holds(self.model):
            raise _refuse(self.model, f"bulk_update() of the status of {self.model._meta.verbose_name_plural}")
        return super().bulk_update(objs, fields, **kwargs)

    def bulk_create(self, objs: Iterable[models.Model], *args: Any, **kwargs: Any) -> list[models.Model]:
        objs = list(objs)
        _refuse_creation(self.model, objs)
        return super().bulk_create(objs, *args, **kwargs)


class StatusGuardedModel(models.Model):
    """A model whose `status` only its state machine's writer (`STATUS_WRITER`) changes."""

    STATUS_WRITER: ClassVar[str]

    objects = StatusGuardedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, **kwargs: Any) -> None:
        model = type(self)
        if self._state.adding:
            _refuse_creation(model, [self])
        elif not _writer_holds(model) and self._writes_status(kwargs.get("update_fields")):
            stored = model._base_manager.using(kwargs.get("using") or self._state.db).filter(pk=self.pk)
            was, status = stored.values_list("status", flat=True).first(), getattr(self, "status", None)
            if was is not None and was != status:
                raise _refuse(
                    model, f"save() of {_name(model)} #{self.pk} changing its status {was!r} to {_shown(status)}"
                )
        super().save(**kwargs)

    def _writes_status(self, update_fields: Iterable[str] | None) -> bool:
        if "status" not in self.__dict__:  # deferred and never assigned: save() leaves it alone
            return False
        return update_fields is None or "status" in update_fields
