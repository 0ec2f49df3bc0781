"""Zero-code setup: ``opentelemetry-instrument`` adds the processor when you opt in.

spanstamp registers :func:`post_instrument` as an ``opentelemetry_post_instrument``
entry point. ``opentelemetry-instrument`` runs it after the configurator (from
``opentelemetry-distro``) has set the global SDK TracerProvider and the instrumentors
are loaded. It does nothing unless ``SPANSTAMP_AUTO_INSTALL`` is true, so installing
spanstamp never changes an application's telemetry by itself::

    SPANSTAMP_AUTO_INSTALL=true opentelemetry-instrument python app.py
"""

from __future__ import annotations

from typing import Final

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from spanstamp import rules
from spanstamp.pipeline import install

AUTO_INSTALL_ENV: Final = "SPANSTAMP_AUTO_INSTALL"


def post_instrument() -> None:
    """Call :func:`~spanstamp.install` on the global provider when ``SPANSTAMP_AUTO_INSTALL`` is true.

    It never raises: whatever goes wrong is logged on the ``spanstamp`` logger and the
    application starts as it would without spanstamp::

        post_instrument()  # what opentelemetry-instrument calls; a no-op without the opt-in
    """
    try:
        if not rules.env_flag(AUTO_INSTALL_ENV, False):
            return
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            rules.logger.warning(
                "%s is set, but no SDK TracerProvider is global after auto-instrumentation (got %s); "
                "spans are not stamped. Install opentelemetry-distro (its configurator sets the provider) "
                "or call spanstamp.install() after your own setup.",
                AUTO_INSTALL_ENV,
                type(provider).__name__,
            )
            return
        install(provider)
    except Exception:
        # opentelemetry-instrument would log and carry on too, but say what it means here.
        rules.logger.exception(
            "%s: spanstamp could not be added to the global TracerProvider; the application runs without stamping",
            AUTO_INSTALL_ENV,
        )
