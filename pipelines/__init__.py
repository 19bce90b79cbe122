"""The crawl stages: fetch, parse sources, extract, tag.

A stage is a plain function or a small class. It knows nothing of the
database or the scheduler: it takes bytes, text or settings and returns
plain data (dataclasses), which `monitor` wires to `storage`.
"""
