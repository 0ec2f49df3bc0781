"""A decorated request handler that takes the session and user from each call.

python examples/decorated_handler.py
"""

from __future__ import annotations

from opentelemetry.sdk.trace.export import ConsoleSpanExporter

import spanstamp
from quickstart import one_line
from spanstamp import from_arg, using_attributes

provider = spanstamp.configure(exporter=ConsoleSpanExporter(formatter=one_line), batch=False)
tracer = provider.get_tracer("handler-example")


@using_attributes(session_id=from_arg("conversation_id"), user_id=from_arg("user_id"), tags=["web"])
def handle_message(conversation_id: str, user_id: str, text: str) -> str:
    with tracer.start_as_current_span("retrieve"):
        pass
    with tracer.start_as_current_span("generate"):
        return text[::-1]


if __name__ == "__main__":
    handle_message("conv-1", "user-a", "hello")
    handle_message(conversation_id="conv-2", user_id="user-b", text="bonjour")
    provider.shutdown()
