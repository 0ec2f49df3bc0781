"""How configure() batches spans for export: ``OTEL_BSP_*`` and ``batch=``, checked.

exporting = exporting_processor(exporters, batch={"max_queue_size": 20000})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from spanstamp import rules
from spanstamp.exporting import env, positive_number

# BatchSpanProcessor's arguments, their variables and the specification's defaults.
_BATCH: Final[dict[str, tuple[str, int]]] = {
    "max_queue_size": ("OTEL_BSP_MAX_QUEUE_SIZE", 2048),
    "schedule_delay_millis": ("OTEL_BSP_SCHEDULE_DELAY", 5000),
    "max_export_batch_size": ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
    "export_timeout_millis": ("OTEL_BSP_EXPORT_TIMEOUT", 30000),
}


def batch_settings(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """BatchSpanProcessor's arguments: ``overrides``, else ``OTEL_BSP_*``, else the defaults.

    batch_settings()  # -> {"max_queue_size": 20000, ...} when OTEL_BSP_MAX_QUEUE_SIZE=20000
    """
    given = dict(overrides or {})
    for key in list(given):
        value = given[key]
        if key not in _BATCH:
            rules.reject("configure(batch)", f"unknown BatchSpanProcessor argument ({rules.describe(key)})")
            del given[key]
        elif not positive_number(value) or (key != "schedule_delay_millis" and not isinstance(value, int)):
            rules.reject(
                f"configure(batch[{key!r}])", f"expected a positive number, got {rules.describe(value)}", TypeError
            )
            del given[key]
    settings: dict[str, float] = {}
    from_user: set[str] = set(given)
    for key, (variable, default) in _BATCH.items():
        if key in given:
            settings[key] = given[key]
            continue
        settings[key] = default
        raw = env(variable)
        if raw is None:
            continue
        try:
            number = int(raw)
        except ValueError:
            number = 0
        if number > 0:
            settings[key] = number
            from_user.add(key)
        else:
            rules.logger.warning(
                "%s is not a positive integer (%s); using the default, %d", variable, rules.describe(raw), default
            )
    queue, batch = settings["max_queue_size"], settings["max_export_batch_size"]
    if batch > queue:
        # The SDK refuses a batch larger than the queue (a ValueError out of configure()).
        fitted = min(_BATCH["max_export_batch_size"][1], queue)
        if "max_export_batch_size" in from_user:
            rules.logger.warning(
                "the export batch size (%d) is larger than the queue (%d); using %d", batch, queue, fitted
            )
        settings["max_export_batch_size"] = fitted
    return settings


def exporting_processor(exporters: Sequence[SpanExporter], batch: bool | Mapping[str, float]) -> SpanProcessor | None:
    """One processor feeding every exporter (each its own batch queue), or None without exporters.

    exporting = exporting_processor([ConsoleSpanExporter()], batch=False)
    """
    if batch is False:
        processors: list[SpanProcessor] = [SimpleSpanProcessor(exporter) for exporter in exporters]
    else:
        settings = batch_settings(batch if isinstance(batch, Mapping) else None)
        # One queue per exporter, as the SDK's configurator does: a slow backend cannot hold up a file.
        processors = [BatchSpanProcessor(exporter, **settings) for exporter in exporters]  # type: ignore[arg-type]
    if len(processors) <= 1:
        return processors[0] if processors else None
    multi = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
    for processor in processors:
        multi.add_span_processor(processor)
    return multi
