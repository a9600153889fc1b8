"""One module per raw format. Each exposes ``convert(paths, options) -> ReadResult``:
`paths` maps the roles of ``imrl.data.sources`` (``ratings``, ``movies`` ...) to files."""
