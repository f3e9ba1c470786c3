"""A path convertor for ids that come from outside.

Starlette's `path` convertor is `.*`, which stops at a newline, so an order or
event id holding one could be stored but never read back. `anything` matches
every character, newlines included.
"""

from __future__ import annotations

from starlette.convertors import PathConvertor, register_url_convertor


class AnythingConvertor(PathConvertor):
    regex = "(?s:.*)"


register_url_convertor("anything", AnythingConvertor())
