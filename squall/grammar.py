"""RFC 9110 field grammar shared by the protocols and the ASGI layer."""

import re

#: token = 1*tchar  (RFC 9110 §5.6.2): valid header names and methods.
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: bytes that may not appear in a field value: CTLs other than HTAB (CR, LF and NUL among them).
BAD_FIELD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
