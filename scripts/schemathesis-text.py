"""schemathesis hooks for text answers (SCHEMATHESIS_HOOKS=scripts/schemathesis-text.py).

schemathesis validates only JSON, YAML and XML bodies against their schemas; a `text/plain`
body is skipped. The HostDB v1 API answers text, so give it to the validator as a string:
its `type: string` schemas (patterns, `maxLength: 0`, enums) are then checked too.
"""

import schemathesis


@schemathesis.deserializer("text/plain")
def text_plain(_ctx, response):
    return response.content.decode(response.encoding or "utf-8")
