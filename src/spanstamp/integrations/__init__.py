"""Integrations with other libraries; each module is imported only when asked for.

from spanstamp.integrations import openai
"""
